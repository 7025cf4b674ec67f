// A fake PostgreSQL server on loopback that plays the machine on the network path: it declines TLS ("N") when asked,
// and to a client that starts in the clear it answers AuthenticationCleartextPassword, as anyone in the middle can,
// and records the password sent back. For the tests that prove a database connection never starts in the clear.
import { createServer, Socket } from "node:net";

/** What the fake server saw: a TLS request, a start-up message in the clear, the password, every byte (latin1). */
export interface PathSeen {
  sslRequest: boolean;
  clearStartup: boolean;
  password: string | null;
  bytes: string;
}

const SSL_REQUEST = 80877103;
const STARTUP_V3 = 196608;

/** Starts the fake server on a free loopback port. */
export async function pathAttacker(): Promise<{ port: number; seen: PathSeen; close: () => Promise<void> }> {
  const seen: PathSeen = { sslRequest: false, clearStartup: false, password: null, bytes: "" };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on("data", (chunk: Buffer) => {
      seen.bytes += chunk.toString("latin1");
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) return;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(length);
          if (code === SSL_REQUEST) {
            seen.sslRequest = true;
            socket.write("N"); // "no TLS here": a client that requires TLS must stop now
            continue;
          }
          if (code === STARTUP_V3) {
            seen.clearStartup = true;
            started = true;
            const auth = Buffer.alloc(9);
            auth.write("R", 0, "latin1");
            auth.writeInt32BE(8, 1);
            auth.writeInt32BE(3, 5); // AuthenticationCleartextPassword
            socket.write(auth);
            continue;
          }
          socket.destroy();
          return;
        }
        if (buffer.length < 5) return;
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) return;
        if (String.fromCharCode(buffer[0]!) === "p") seen.password = buffer.subarray(5, length).toString("utf8");
        socket.destroy();
        return;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    port, seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Hands every connection this process makes to `host` to 127.0.0.1:`port` instead (no DNS lookup, nothing leaves the
 * machine), until the returned function is called.
 */
export function redirectConnections(host: string, port: number): () => void {
  const connect = Socket.prototype.connect;
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
    if (args[1] === host) args.splice(0, 2, port, "127.0.0.1");
    else if (typeof args[0] === "object" && args[0] !== null && (args[0] as { host?: string }).host === host) args[0] = { ...(args[0] as object), host: "127.0.0.1", port };
    return (connect as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof Socket.prototype.connect;
  return () => {
    Socket.prototype.connect = connect;
  };
}
