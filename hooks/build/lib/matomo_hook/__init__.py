"""matomo_hook: the Matomo chart's post-install/post-upgrade hook.

It tells the schema's state from the database, drives Matomo's installer over
HTTP on localhost, gets ``core:update`` run through the console channel and
restarts the serving Deployment.
"""

__version__ = "0.1.0"
