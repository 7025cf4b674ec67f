// Test support: a tarpitting SMTP server on 127.0.0.1 that answers every command only after `delayMs`, each
// reply well inside any socket timeout; with `dropFirst`, it also hangs up on the first messages after their data,
// before the final reply (a relay that crashed or lost the connection at the worst moment). As RFC 5321 §4.1.1.4
// has it, a message counts as accepted only when its final 250 reply is actually written; if the client hangs up
// first, the server keeps no copy.
import { createServer, type AddressInfo, type Socket } from "node:net";

export interface TarpitSMTPServer {
  port: number;
  /** Message-ID of every message accepted (its 250 written to an open connection), in order. */
  accepted: string[];
  /** Message-ID of every message whose data was taken and whose connection was then dropped without a reply. */
  dropped: string[];
  close(): Promise<void>;
}

export async function startTarpitSMTPServer(options: { delayMs: number; dropFirst?: number }): Promise<TarpitSMTPServer> {
  const accepted: string[] = [];
  const dropped: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const reply = (line: string, then?: () => void): void => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (socket.destroyed || !socket.writable) return;
        socket.write(`${line}\r\n`);
        then?.();
      }, options.delayMs);
      timers.add(timer);
    };
    reply("220 tarpit.test ESMTP");
    let buffer = "";
    let inData = false;
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end < 0) return;
          const data = buffer.slice(0, end);
          buffer = buffer.slice(end + 5);
          inData = false;
          const messageId = /^Message-ID:\s*(\S+)/im.exec(data)?.[1] ?? "?";
          if (dropped.length < (options.dropFirst ?? 0)) {
            dropped.push(messageId);
            socket.destroy();
            return;
          }
          reply("250 2.0.0 Ok: queued", () => accepted.push(messageId));
          continue;
        }
        const eol = buffer.indexOf("\r\n");
        if (eol < 0) return;
        const command = buffer.slice(0, eol).slice(0, 4).toUpperCase();
        buffer = buffer.slice(eol + 2);
        if (command === "EHLO") reply("250-tarpit.test\r\n250 8BITMIME");
        else if (command === "DATA") {
          inData = true;
          reply("354 go ahead");
        } else if (command === "QUIT") reply("221 bye", () => socket.end());
        else reply("250 ok");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
