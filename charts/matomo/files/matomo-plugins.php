<?php
// Chart matomo, files/matomo-plugins.php: prints the plugins Matomo loads for
// the code in the first folder given (default /usr/src/matomo) and the config
// in the second one's config/ (Matomo's PIWIK_USER_PATH, default
// /var/lib/matomo), one name a line. matomo-init.sh writes them as the pod's
// [PluginsInstalled].
//
// Why: Matomo's tracker loads only plugins listed in [PluginsInstalled]
// (core/Plugin/Manager.php, loadTrackerPlugins -> isTrackerPlugin ->
// isPluginInstalled, read from the config), and only a UI or API request
// (FrontController -> installLoadedPlugins) appends the list to the local
// config. A pod started without it answers tracking requests 204 and stores
// nothing until such a request reaches it. The list is what Matomo itself
// loads (Plugin\Manager::loadActivatedPlugins: [Plugins] of the config chain
// plus the plugins it always activates, those present in plugins/), computed
// by Matomo's own code; no database is involved, so pods start before the
// tables exist. Installing a plugin in the database (its tables, its
// version_<plugin> option) is the hook's job (README: "Plugins").
//
// With a third argument --activated, followed by the names of plugins that
// are not in the image (the chart's plugins.extra, found by Matomo through
// MATOMO_PLUGIN_DIRS), it prints instead the [Plugins] list to write into the
// local config.ini.php: the list Matomo's config chain gives (global.ini.php,
// common.config.ini.php; non-user files merge Plugins[] by index, so a partial
// list there cannot add a plugin) followed by those names not already in it.
// The local file is the user file, whose sections replace whole sections, so
// that list activates them and keeps every other one. It reads only the
// config files (no config.ini.php needed: the hook's sidecar has none yet).
$root = rtrim($argv[1] ?? '/usr/src/matomo', '/');
$user = rtrim($argv[2] ?? '/var/lib/matomo', '/');
if (!is_file($root . '/core/bootstrap.php')) {
    fwrite(STDERR, "matomo-plugins: no Matomo code in $root\n");
    exit(1);
}
define('PIWIK_INCLUDE_PATH', $root);
define('PIWIK_USER_PATH', $user);
define('PIWIK_DOCUMENT_ROOT', $root);
require $root . '/core/bootstrap.php';

$valid = function ($name) {
    if (!is_string($name) || !preg_match('/^[A-Za-z][A-Za-z0-9_]*$/', $name)) {
        fwrite(STDERR, "matomo-plugins: unexpected plugin name\n");
        exit(1);
    }
};
if (($argv[3] ?? '') === '--activated') {
    $settings = new \Piwik\Application\Kernel\GlobalSettingsProvider();
    $section = $settings->getSection('Plugins');
    $names = array_values(array_filter((array) ($section['Plugins'] ?? []), 'strlen'));
    foreach (array_slice($argv, 4) as $extra) {
        $valid($extra);
        if (!in_array($extra, $names, true)) {
            $names[] = $extra;
        }
    }
    if (!$names) {
        fwrite(STDERR, "matomo-plugins: the config activates no plugin\n");
        exit(1);
    }
    foreach ($names as $name) {
        $valid($name);
        echo $name, "\n";
    }
    exit(0);
}

$environment = new \Piwik\Application\Environment('cli');
$environment->init();
$manager = \Piwik\Plugin\Manager::getInstance();
$manager->loadActivatedPlugins();
$names = $manager->getLoadedPluginsName();
if (!$names) {
    fwrite(STDERR, "matomo-plugins: Matomo loads no plugin from $root\n");
    exit(1);
}
foreach ($names as $name) {
    $valid($name);
    echo $name, "\n";
}
