// The database URL as shown in messages (`database.where`: every error naming the database, `bulwark init` output,
// the server's start line) carries no secret. node-postgres takes the password from the userinfo and also from
// `?password=` (pg-connection-string copies every query parameter into the client config), and `sslpassword`,
// `sslkey`… the same way, so masking only the userinfo password leaked the others.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { redactURL } from "../src/store/database.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const SECRETS = ["Sup3rSecretPw", "KeyPassphrase", "UserinfoPw", "t0ken", "s3cret", "pr1vate-key-path"];
const LOADED = "postgres://bulwark:UserinfoPw@127.0.0.1:1/bulwark" +
  "?password=Sup3rSecretPw&sslpassword=KeyPassphrase&sslkey=/etc/pr1vate-key-path&PassWord=Sup3rSecretPw&api_token=t0ken&client_secret=s3cret" +
  "&application_name=bulwark-web&sslmode=require";

function assertNoSecret(shown: string): void {
  for (const secret of SECRETS) assert.ok(!shown.includes(secret) && !shown.includes(encodeURIComponent(secret)), `"${secret}" is shown: ${shown}`);
}

describe("redactURL", () => {
  it("attack: masks a password given as a query parameter, and every parameter named like a secret", () => {
    const shown = redactURL(LOADED);
    assertNoSecret(shown);
    assert.match(shown, /password=\*\*\*/);
    assert.match(shown, /sslpassword=\*\*\*/);
    assert.match(shown, /sslkey=\*\*\*/);
  });

  it("attack: masks a parameter whose name is percent-encoded (pg decodes the name before using it)", () => {
    assertNoSecret(redactURL("postgres://bulwark@db/bulwark?pass%77ord=Sup3rSecretPw&%73slpassword=KeyPassphrase"));
  });

  it("keeps what an operator needs to recognise the database: host, port, database, user and harmless parameters", () => {
    const shown = redactURL(LOADED);
    assert.ok(shown.startsWith("postgres://bulwark:***@127.0.0.1:1/bulwark?"), shown);
    assert.match(shown, /application_name=bulwark-web/);
    assert.match(shown, /sslmode=require/);
    assert.equal(redactURL("postgres://bulwark@localhost/bulwark?host=%2Fvar%2Frun%2Fpostgresql"), "postgres://bulwark@localhost/bulwark?host=%2Fvar%2Frun%2Fpostgresql");
  });

  it("attack: the error for an unreachable database does not carry a query-string password", async () => {
    const error = await openApp({
      env: { BULWARK_DATABASE_URL: LOADED.replace("&sslmode=require", ""), BULWARK_MASTER_KEY: testMasterKey(1), BULWARK_DATA_DIR: "/nonexistent/bulwark-redact-test", BULWARK_LOG_LEVEL: "silent" },
    }).then(
      async (app) => {
        await app.close();
        return null;
      },
      (e: Error & { code?: string }) => e,
    );
    assert.ok(error, "connecting to 127.0.0.1:1 failed");
    assert.equal(error.code, "BULWARK_ERR_DB_UNREACHABLE", error.message);
    assertNoSecret(error.message);
  });
});
