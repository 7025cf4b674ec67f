// services(5) as glibc's files backend reads it for getservbyname(name, "tcp"), the fallback of sshd's a2port().
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServices, systemServices } from "./services.ts";

test("names and aliases of TCP entries give their port; UDP-only names, other case and comments give none", () => {
  const lookup = parseServices("# header\nssh\t\t22/tcp\t\t\t# SSH Remote Login Protocol\nhttp 80/tcp www # WorldWideWeb\nsyslog\t514/udp\ncustom 2222/tcp ssh\n");
  assert.deepEqual(["ssh", "http", "www", "syslog", "SSH", "#", "WorldWideWeb"].map(lookup), [22, 80, 80, null, null, null, null]);
});

test("the system lookup knows no names when /etc/services cannot be read (sshd then refuses a port by name too)", () => {
  assert.equal(systemServices("/nonexistent/services")("ssh"), null);
});
