// How a PostgreSQL URL protects its connection (databaseTLS, src/app/config.ts): a network host needs an sslmode, and
// the URL's own host cannot vouch for a ?host= that sends node-postgres elsewhere. ASVS 12.3.1.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { databaseTLS, loadConfig } from "./config.ts";

const tls = (url: string, env: NodeJS.ProcessEnv = {}): string => databaseTLS(new URL(url), env);

describe("databaseTLS", () => {
  it("a Unix socket or a loopback address is local; a network host needs an sslmode, here or in PGSSLMODE", () => {
    assert.equal(tls("postgres://u@localhost/db?host=%2Frun%2Fpostgresql"), "local");
    assert.equal(tls("postgres://u:p@127.0.0.1:5432/db"), "local");
    assert.equal(tls("postgres://u:p@[::1]/db"), "local");
    assert.equal(tls("postgres://u:p@db.example/db"), "missing");
    assert.equal(tls("postgres://u:p@db.example/db", { PGSSLMODE: "verify-full" }), "tls");
    assert.equal(tls("postgres://u:p@db.example/db?sslmode=require"), "tls");
    assert.equal(tls("postgres://u:p@db.example/db?sslmode=disable"), "plain");
    assert.equal(tls("postgres://u:p@db.example/db?sslmode=prefer"), "downgradable");
  });

  it("attack: a loopback-looking URL whose ?host= (or whose name) reaches another machine is not local", () => {
    assert.equal(tls("postgres://u:p@localhost/db?host=db.remote.example"), "missing");
    assert.equal(tls("postgres://u:p@127.0.0.1.nip.io/db"), "missing");
  });

  it("loadConfig refuses a network URL without sslmode, and a downgradable one, naming the variable and not the password", () => {
    for (const url of ["postgres://bulwark:S3cretPw@db.example/bulwark", "postgres://bulwark:S3cretPw@localhost/bulwark?host=db.example", "postgres://bulwark:S3cretPw@db.example/bulwark?sslmode=allow"]) {
      assert.throws(() => loadConfig({ BULWARK_DATABASE_URL: url }), (error: Error) => {
        assert.match(error.message, /^BULWARK_DATABASE_URL (reaches|has sslmode=allow)/);
        assert.ok(!error.message.includes("S3cretPw"), error.message);
        return true;
      }, url);
    }
    assert.equal(loadConfig({ BULWARK_DATABASE_URL: "postgres://bulwark@db.example/bulwark?sslmode=verify-full" }).databaseURL, "postgres://bulwark@db.example/bulwark?sslmode=verify-full");
  });
});
