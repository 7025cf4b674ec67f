<?php
// Known-answer vectors from Debian's php-cli: crypt(), password_hash(), hash(), and Drupal 7's
// _password_crypt written out from the algorithm documented in Drupal 7's includes/password.inc
// ($S$ = SHA-512, $P$/$H$ = MD5, 2^log2 iterations of H(previous . password), Drupal's base64,
// truncated to 55 characters; "U" hashes are the same over md5(password) as hex).
// Prints "scheme<TAB>password-base64<TAB>hash" lines; php-vectors.py turns them into JSON.

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function drupal_base64_encode($input, $count) {
  $output = '';
  $i = 0;
  do {
    $value = ord($input[$i++]);
    $output .= ITOA64[$value & 0x3f];
    if ($i < $count) $value |= ord($input[$i]) << 8;
    $output .= ITOA64[($value >> 6) & 0x3f];
    if ($i++ >= $count) break;
    if ($i < $count) $value |= ord($input[$i]) << 16;
    $output .= ITOA64[($value >> 12) & 0x3f];
    if ($i++ >= $count) break;
    $output .= ITOA64[($value >> 18) & 0x3f];
  } while ($i < $count);
  return $output;
}

function drupal_password_crypt($algo, $password, $setting) {
  $count_log2 = strpos(ITOA64, $setting[3]);
  $salt = substr($setting, 4, 8);
  $count = 1 << $count_log2;
  $hash = hash($algo, $salt . $password, TRUE);
  do {
    $hash = hash($algo, $hash . $password, TRUE);
  } while (--$count);
  $len = strlen($hash);
  $output = substr($setting, 0, 12) . drupal_base64_encode($hash, $len);
  return substr($output, 0, 55);
}

function salt8() {
  $s = '';
  foreach (str_split(random_bytes(8)) as $b) $s .= ITOA64[ord($b) & 0x3f];
  return $s;
}

function crypt_salt($n) {
  return substr(str_replace('+', '.', rtrim(base64_encode(random_bytes(12)), '=')), 0, $n);
}

$passwords = ["password", "correct horse battery staple", "p\u{e4}ssw\u{f6}rd \u{2713} \u{5bc6}\u{7801}", ""];
$out = function ($scheme, $password, $hash) { echo $scheme, "\t", base64_encode($password), "\t", $hash, "\n"; };

foreach ($passwords as $pw) {
  foreach ([[7, 'S'], [15, 'S'], [8, 'P'], [9, 'H']] as [$log2, $type]) {
    $setting = '$' . $type . '$' . ITOA64[$log2] . salt8();
    $out($type === 'S' ? 'drupal7' : 'phpass', $pw, drupal_password_crypt($type === 'S' ? 'sha512' : 'md5', $pw, $setting));
  }
  // Drupal 7 user_update_7000: 'U' . user_hash_password(md5($old)), verified over md5(password).
  foreach ([[7, 'S'], [11, 'S'], [8, 'P']] as [$log2, $type]) {
    $setting = '$' . $type . '$' . ITOA64[$log2] . salt8();
    $out('drupal7-wrapped-md5', $pw, 'U' . drupal_password_crypt($type === 'S' ? 'sha512' : 'md5', md5($pw), $setting));
  }
  $out('md5-crypt', $pw, crypt($pw, '$1$' . crypt_salt(8) . '$'));
  $out('sha256-crypt', $pw, crypt($pw, '$5$' . crypt_salt(16) . '$'));
  $out('sha256-crypt', $pw, crypt($pw, '$5$rounds=2000$' . crypt_salt(12) . '$'));
  $out('sha512-crypt', $pw, crypt($pw, '$6$' . crypt_salt(16) . '$'));
  $out('sha512-crypt', $pw, crypt($pw, '$6$rounds=1500$' . crypt_salt(5) . '$'));
  $out('bcrypt', $pw, password_hash($pw, PASSWORD_BCRYPT, ['cost' => 4]));
  $out('argon2id', $pw, password_hash($pw, PASSWORD_ARGON2ID, ['memory_cost' => 256, 'time_cost' => 1, 'threads' => 1]));
  $out('argon2i', $pw, password_hash($pw, PASSWORD_ARGON2I, ['memory_cost' => 512, 'time_cost' => 2, 'threads' => 1]));
  $out('md5', $pw, md5($pw));
  $out('sha1', $pw, strtoupper(sha1($pw)));
  $out('sha256', $pw, hash('sha256', $pw));
  $out('sha512', $pw, hash('sha512', $pw));
  // Salted digests in layouts only an old system knew; TEMPLATE rows carry template, salt, digest.
  $salt = bin2hex(random_bytes(16));
  echo "TEMPLATE\tsha256(salt+password):hex\t", base64_encode($pw), "\t", $salt, "\t", hash('sha256', $salt . $pw), "\n";
  echo "TEMPLATE\tmd5(password+salt):hex\t", base64_encode($pw), "\t", 'Zq#8', "\t", md5($pw . 'Zq#8'), "\n";
  echo "TEMPLATE\tsha1(salt+password):base64\t", base64_encode($pw), "\t", "s\u{e4}lt", "\t", base64_encode(sha1("s\u{e4}lt" . $pw, true)), "\n";
  echo "TEMPLATE\tsha512(password+salt):base64\t", base64_encode($pw), "\t", $salt, "\t", base64_encode(hash('sha512', $pw . $salt, true)), "\n";
}
