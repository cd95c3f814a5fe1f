<?php
// Chart matomo, files/matomo-version-check.php: run by matomo-init.sh in every
// Matomo pod that serves or archives, once the pod's config is written (the
// code in the first folder given, the config in the second one's config/). Exits 1,
// with the same message as the hook's refusal, when the database's
// version_core is newer than this image's Matomo: Matomo has no schema
// downgrade, and older code on a newer schema answers HTTP 500. A pod that
// fails here stops its rollout (a `helm rollback` or `helm upgrade` to an older
// image.tag), and the previous ReplicaSet keeps serving.
//
// Anything else lets the pod start (exit 0, one line on stderr): no database
// answering within MATOMO_VERSION_CHECK_WAIT seconds (30; a first install whose
// database is still starting, an outage), no Matomo tables yet,
// the same or an older version_core (the hook's core:update is then due).
//
// MATOMO_VERSION_CHECK_MODE=archive (the archiver, right before core:archive)
// exits 3 where a serving pod starts: Matomo not installed yet, or a
// version_core older than the code. core:archive of newer code on an older
// schema writes to it before the hook's backup and core:update (it installs the
// new plugins, fills the changes table, creates archive tables and invalidates a
// year of reports; measured with 5.1.2 on a 5.0.3 database), so that run is
// skipped until the hook has upgraded. No database answering still lets
// core:archive run and report the outage itself.
// The database password is never printed.
$root = rtrim($argv[1] ?? '/usr/src/matomo', '/');
$user = rtrim($argv[2] ?? '/var/lib/matomo', '/');
$say = function (string $text): void {
    fwrite(STDERR, "matomo-version-check: $text\n");
};
$archive = getenv('MATOMO_VERSION_CHECK_MODE') === 'archive';
// not_yet: what a serving pod starts on (exit 0) and an archiver run skips (exit 3).
$not_yet = function (string $why) use ($say, $archive): void {
    if ($archive) {
        $say("$why: this archiving run is skipped, the hook installs or upgrades first");
        exit(3);
    }
    $say("$why: the pod starts");
    exit(0);
};
if (!preg_match("/const\s+VERSION\s*=\s*'([^']+)'/", (string) @file_get_contents("$root/core/Version.php"), $m)) {
    $say("no Matomo code in $root");
    exit(1);
}
$code = $m[1];

// The settings as Matomo reads them: the managed common config, then the local one.
$ini = [];
foreach (['common.config.ini.php', 'config.ini.php'] as $name) {
    $parsed = @parse_ini_file("$user/config/$name", true);
    if (is_array($parsed)) {
        $ini = array_replace_recursive($ini, $parsed);
    }
}
$db = $ini['database'] ?? [];
if (empty($db['host']) || empty($db['dbname'])) {
    $say("no [database] host and dbname in the config: check skipped");
    exit(0);
}
$dsn = sprintf('mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4', $db['host'], (int) ($db['port'] ?? 3306), $db['dbname']);
// A database that is restarting (an embedded MariaDB rolled with the release) must not let
// older code through: retry for a while; one that never answers (a first install whose
// database is still starting, an outage) lets the pod start after that.
$wait = (int) (getenv('MATOMO_VERSION_CHECK_WAIT') ?: 30);
$deadline = microtime(true) + $wait;
$pdo = null;
while ($pdo === null) {
    try {
        $pdo = new PDO($dsn, (string) ($db['username'] ?? ''), (string) ($db['password'] ?? ''), [
            PDO::ATTR_TIMEOUT => 5,
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        ]);
    } catch (PDOException $e) {
        if (microtime(true) >= $deadline) {
            // Only the error code: never the DSN's password-free but long message.
            $say("the database did not answer within {$wait} s (code {$e->getCode()}): check skipped");
            exit(0);
        }
        usleep(500000);  // the pod waits for nothing longer than the database does
    }
}
$prefix = preg_replace('/[^A-Za-z0-9_]/', '', (string) ($db['tables_prefix'] ?? 'matomo_'));
try {
    $stmt = $pdo->query("SELECT option_value FROM `{$prefix}option` WHERE option_name = 'version_core'");
    $database = $stmt === false ? false : $stmt->fetchColumn();
} catch (PDOException $e) {
    $not_yet("no Matomo tables yet");
}
if ($database === false || $database === null || $database === '') {
    $not_yet("Matomo is not installed yet");
}
if (version_compare($code, (string) $database, '<')) {
    $say("the database is at Matomo $database (version_core) but this release runs Matomo $code: "
        . "Matomo cannot downgrade a schema, and older code on a newer schema fails. Either go forward "
        . "again (helm upgrade with image.tag $database or newer, or helm rollback to the revision that "
        . "ran it), or go back with the data as it was: restore the database from the backup taken "
        . "before the upgrade to $database, then run this release again");
    exit(1);
}
if (version_compare($code, (string) $database, '>')) {
    $not_yet("the database is at Matomo $database (version_core), this release runs Matomo $code: "
        . "the hook's core:update is due");
}
$say("code $code, database $database: ok");
