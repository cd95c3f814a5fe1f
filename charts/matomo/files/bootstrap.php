<?php
// Chart matomo, files/bootstrap.php: mounted (subPath, read-only) at
// /usr/src/matomo/bootstrap.php in every container that runs Matomo's code.
// Matomo's entry points (index.php, matomo.php/piwik.php, console) include a
// bootstrap.php at the code's root when there is one, before anything else:
// its documented way to keep the writable files apart from the code. The code
// stays where the image has it, read-only; config/ and tmp/ are in
// /var/lib/matomo, the pod's emptyDir (docs/architecture.md, "Code and
// writable space").
if (!defined('PIWIK_USER_PATH')) {
    define('PIWIK_USER_PATH', '/var/lib/matomo');
}
