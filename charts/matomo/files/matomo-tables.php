<?php
// Chart matomo, files/matomo-tables.php: finishes a table creation that Matomo's
// installer began and did not end (the database went away in the middle of the
// tablesCreation step), for the code in the first folder given (default
// /usr/src/matomo) and the config in the second one's config/ (default
// /var/lib/matomo). Run by the hook pod's installer sidecar (hook-matomo.sh,
// console channel request "create-tables") when the hook finds some of Matomo's
// tables but no version_core, no site and no superuser.
//
// Why not the installer: its tablesCreation creates tables only into an empty
// prefix and otherwise offers to drop them all (deleteTables), which the hook
// never does. This script makes the calls tablesCreation makes, in its order
// (plugins/Installation/Controller.php), with Matomo's own code, and each of
// them leaves what exists as it is:
//   - DbHelper::createTables() creates only the tables that do not exist
//     (core/Db/Schema/Mysql.php compares with the tables installed);
//   - the anonymous user and its token are added only when missing (Matomo's
//     createAnonymousUser would stop on the token's unique key);
//   - recordInstallVersion() keeps a recorded install version;
//   - the component updates and version_core are recorded as the step does.
// Nothing is dropped, truncated or rewritten.
$root = rtrim($argv[1] ?? '/usr/src/matomo', '/');
$user = rtrim($argv[2] ?? '/var/lib/matomo', '/');
if (!is_file($root . '/core/bootstrap.php')) {
    fwrite(STDERR, "matomo-tables: no Matomo code in $root\n");
    exit(1);
}
define('PIWIK_INCLUDE_PATH', $root);
define('PIWIK_USER_PATH', $user);
define('PIWIK_DOCUMENT_ROOT', $root);
require $root . '/core/bootstrap.php';

use Piwik\Access;
use Piwik\Common;
use Piwik\Date;
use Piwik\Db;
use Piwik\DbHelper;
use Piwik\Plugins\UsersManager\Model as UsersModel;
use Piwik\Updater;
use Piwik\Version;

$environment = new \Piwik\Application\Environment('cli');
$environment->init();
\Piwik\Plugin\Manager::getInstance()->loadActivatedPlugins();

if (\Piwik\SettingsPiwik::isMatomoInstalled()) {
    fwrite(STDERR, "matomo-tables: the config says Matomo is installed; only a seeded install config is accepted\n");
    exit(2);
}

$before = DbHelper::getTablesInstalled();
DbHelper::createTables();
$created = array_values(array_diff(DbHelper::getTablesInstalled(), $before));

$user = Common::prefixTable('user');
$tokens = Common::prefixTable('user_token_auth');
if (!Db::fetchOne("SELECT COUNT(*) FROM `$user` WHERE login = 'anonymous'")) {
    DbHelper::createAnonymousUser();
} elseif (!Db::fetchOne("SELECT COUNT(*) FROM `$tokens` WHERE login = 'anonymous'")) {
    (new UsersModel())->addTokenAuth('anonymous', 'anonymous', 'anonymous default token', Date::factory('now')->getDatetime());
}
DbHelper::recordInstallVersion();

Access::doAsSuperUser(function () {
    $updater = new Updater();
    $components = $updater->getComponentUpdates();
    if (!empty($components)) {
        $result = $updater->updateComponents($components);
        foreach ($result['errors'] ?? [] as $error) {
            fwrite(STDERR, "matomo-tables: update error: $error\n");
        }
    }
    Updater::recordComponentSuccessfullyUpdated('core', Version::VERSION);
});

echo "matomo-tables: created ", count($created), " missing tables (", implode(', ', $created) ?: 'none',
    "), ", count($before), " kept; version_core ", Version::VERSION, "\n";
