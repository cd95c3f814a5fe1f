"""A stand-in for Matomo's installer and console (PHP is not available here)."""
