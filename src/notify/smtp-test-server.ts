// Test support: a real SMTP server (smtp-server) on 127.0.0.1 with an ephemeral port that records what
// arrives and can answer each message with a chosen reply code. Used only by the notify tests.
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  raw: string;
  /** Header names lower-cased; folded lines unfolded. Repeated headers keep the last value. */
  headers: Map<string, string>;
  body: string;
}

/** What to answer for the n-th DATA (0-based): accept, or an SMTP error code with its text. */
export type Responder = (mail: ReceivedMail, index: number) => { code: number; message: string } | null;

export interface TestSMTPServer {
  port: number;
  /** Every message accepted with 250. */
  accepted: ReceivedMail[];
  /** Every message answered with an error. */
  refused: ReceivedMail[];
  respond: Responder;
  close(): Promise<void>;
}

/** Minimal RFC 5322 split: headers until the first empty line, continuation lines unfolded. */
export function parseMail(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.indexOf("\r\n\r\n");
  const head = split < 0 ? raw : raw.slice(0, split);
  const body = split < 0 ? "" : raw.slice(split + 4);
  const headers = new Map<string, string>();
  let last: string | null = null;
  for (const line of head.split("\r\n")) {
    if (/^[ \t]/.test(line) && last) {
      headers.set(last, `${headers.get(last) ?? ""} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    headers.set(last, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** Decodes a quoted-printable body enough to read our plain-text templates. */
export function decodeQuotedPrintable(body: string): string {
  return body.replace(/=\r\n/g, "").replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export async function startTestSMTPServer(respond: Responder = () => null): Promise<TestSMTPServer> {
  let index = 0;
  const state: TestSMTPServer = { port: 0, accepted: [], refused: [], respond, close: async () => {} };
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    size: 10 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const envelope = session.envelope;
        const mail: ReceivedMail = {
          envelopeFrom: envelope.mailFrom ? envelope.mailFrom.address : "",
          envelopeTo: envelope.rcptTo.map((r) => r.address),
          raw,
          ...parseMail(raw),
        };
        const answer = state.respond(mail, index++);
        if (answer) {
          state.refused.push(mail);
          callback(Object.assign(new Error(answer.message), { responseCode: answer.code }));
        } else {
          state.accepted.push(mail);
          callback(null, `Ok: queued as Q${index}`);
        }
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  state.port = (server.server.address() as AddressInfo).port;
  state.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return state;
}
