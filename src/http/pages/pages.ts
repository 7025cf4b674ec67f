// The two pages an emailed link opens: /reset-password (choose a new password; a second factor when the account
// has one) and /confirm-email (confirm the new address). Plain HTML, one external script and one stylesheet
// under the same CSP as every response (no inline script or style, ASVS 3.4.3). The token travels in the URL
// fragment, which browsers never send to a server: the script reads it, removes it from the address bar and
// history, and POSTs it to the JSON routes (/auth/password/reset/complete, /auth/email/confirm), so the page
// itself carries nothing secret. Confirmation waits for a click: mail scanners that open links run no form. Before it,
// the confirmation page names the account the link moves, as its mail does (POST /confirm-email/account).
import type { FastifyInstance } from "fastify";
import { emailChangeErrors, maskedAddress } from "../../accounts/email-change/index.ts";
import type { App } from "../../app/types.ts";
import { recordLinkRefusal, str } from "../auth/helpers.ts";
import { PAGES_CSS, PAGES_JS } from "./assets.ts";

/** Escapes text for an HTML text node or a double-quoted attribute. */
export function escapeHTML(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

function page(title: string, serviceName: string, kind: string, body: string): string {
  const service = escapeHTML(serviceName);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHTML(title)} · ${service}</title>
<link rel="stylesheet" href="/assets/bulwark-pages.css">
<script src="/assets/bulwark-pages.js" defer></script>
</head>
<body data-page="${kind}">
<main>
<h1>${escapeHTML(title)}</h1>
<p class="service">${service}</p>
<noscript><p class="error">This page needs JavaScript to send your request.</p></noscript>
${body}
<p id="status" role="status" aria-live="polite"></p>
</main>
</body>
</html>
`;
}

// The passkey button (in #factor) stays hidden until the server, asked with the link and an acceptable password, answers
// that the account needs a second factor and holds a passkey, and the browser can run WebAuthn: the script decides.
// The forms are sent by the page script as JSON; method="post" is for a submission that bypasses it
// (form.submit() from an autofill extension): a GET would put the new password in the URL, and so in request
// logs and browser history (ASVS 14.2.1); a POST to the page's own path carries it only in a body nothing keeps.
function resetPage(app: App): string {
  const min = app.config.passwordMinLength;
  return page("Choose a new password", app.config.serviceName, "reset-password", `<form id="reset" method="post" hidden>
<label for="password">New password <span class="hint">(at least ${min} characters; a passphrase of several words is easiest)</span></label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="${min}" maxlength="4096" required>
<label for="confirm">Type it again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" maxlength="4096" required>
<div id="factor" hidden>
<p>This account uses two-factor authentication. Enter a code from your authenticator app, or one of your recovery codes.</p>
<label for="code">Code</label>
<input id="code" name="code" autocomplete="one-time-code" maxlength="128">
<div id="passkey-choice" hidden>
<p>Or confirm with the passkey or security key registered to this account.</p>
<button type="button" id="passkey" class="secondary">Use a passkey or security key</button>
</div>
</div>
<button type="submit">Set new password</button>
</form>`);
}

function confirmPage(app: App): string {
  return page("Confirm your new email address", app.config.serviceName, "confirm-email", `<form id="confirm-email" method="post" hidden>
<p>This link makes this email address the address of the account that now uses <strong id="account"></strong>
(part of that address is hidden here; its domain is shown in full).</p>
<p><strong>If this is not your account, do not confirm:</strong> it would give this address to someone else's account.</p>
<p>If it is yours, security notices will go to this address from now on.</p>
<button type="submit">Confirm new address</button>
</form>`);
}

const HTML = "text/html; charset=utf-8";

/** Registers the link pages and their assets. */
export function registerPages(server: FastifyInstance, app: App): void {
  const reset = resetPage(app);
  const confirm = confirmPage(app);
  const noStore = { "cache-control": "no-store", "content-type": HTML };
  server.get("/reset-password", { config: { access: "public" } }, async (_request, reply) => reply.headers(noStore).send(reset));
  server.get("/confirm-email", { config: { access: "public" } }, async (_request, reply) => reply.headers(noStore).send(confirm));
  // The account a confirmation link moves, for the page to show before the click (ASVS 6.3.7): no more than its mail
  // says (maskedAddress of the account's current address), to whoever holds the link, and nothing for any other token.
  // It spends nothing; a refused genuine link is recorded as the confirmation's refusal is (the page then stops there).
  server.post<{ Body: { token: string } }>(
    "/confirm-email/account",
    { schema: { body: { type: "object", required: ["token"], properties: { token: str(200) } } }, config: { access: "public", csrf: "pre-login" } },
    async (request, reply) => {
      const check = await app.accounts.emailChanges.check(request.body.token);
      if (!check.valid) {
        await recordLinkRefusal(app, request, "auth.email.confirm-refused", check.genuine && { ...check.genuine, reason: check.reason });
        throw emailChangeErrors.refused();
      }
      return reply.headers({ "cache-control": "no-store" }).send({ account: maskedAddress(check.accountEmail) });
    },
  );
  const asset = { "cache-control": "public, max-age=3600" };
  server.get("/assets/bulwark-pages.js", { config: { access: "public" } }, async (_request, reply) =>
    reply.headers({ ...asset, "content-type": "text/javascript; charset=utf-8" }).send(PAGES_JS));
  server.get("/assets/bulwark-pages.css", { config: { access: "public" } }, async (_request, reply) =>
    reply.headers({ ...asset, "content-type": "text/css; charset=utf-8" }).send(PAGES_CSS));
}
