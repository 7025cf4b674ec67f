// The script and stylesheet of the link pages (src/http/pages/pages.ts), served from /assets/. Kept as text in
// a module so the package needs no asset copying; the browser test (test/http-pages.test.ts) runs the script in
// Chromium under the real CSP.

export const PAGES_JS = `"use strict";
(function () {
  var status = document.getElementById("status");
  function say(text, kind) { status.textContent = text; status.className = kind || ""; }
  var match = /^#token=([A-Za-z0-9._-]{1,200})$/.exec(location.hash);
  // The token leaves the address bar and the history at once: not for a screenshot, a shared screen or Back.
  if (location.hash) history.replaceState(null, "", location.pathname);
  var kind = document.body.getAttribute("data-page");
  var form = document.querySelector("form");
  if (!match) {
    say("This link is incomplete. Open it again from the email, or ask for a new one.", "error");
    return;
  }
  var token = match[1];

  // The link's token is the whole authority: no cookie goes with it (a signed-in browser's session would make
  // the server ask for a CSRF token this page does not have) and none is taken from the answer.
  function post(path, body) {
    return fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), credentials: "omit" })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (data) { return { status: res.status, data: data }; });
      });
  }
  function errorOf(r) { return (r.data && r.data.error) || {}; }

  var SUCCESS = "Your password was changed, and every session of your account was signed out. Sign in with the new password.";
  var passkeyChoice = document.getElementById("passkey-choice");

  /** The new password, or null (and the reason shown) when the two fields differ. */
  function newPassword() {
    var password = document.getElementById("password").value;
    if (password !== document.getElementById("confirm").value) {
      say("The two passwords are not the same.", "error");
      return null;
    }
    return password;
  }

  // The answer to a completion, whichever factor went with it ("code" or "passkey").
  function resetAnswered(r, via) {
    if (r.status === 200) {
      // Emptied, not only hidden: the new password does not stay in the page for a script or an onlooker.
      form.reset();
      form.hidden = true;
      say(SUCCESS, "ok");
      return;
    }
    var e = errorOf(r);
    if (e.code === "BULWARK_ERR_MFA_REQUIRED" || e.code === "BULWARK_ERR_MFA_INVALID") {
      // The passkey is offered only when this answer says the account holds one: it goes to the link's holder only,
      // after an acceptable password, so the page asks nothing that anyone without the link could ask. Without
      // WebAuthn in the browser the button could do nothing, and the code field stays the only way.
      var factors = (r.data && r.data.factors) || {};
      var withPasskey = Boolean(window.PublicKeyCredential && navigator.credentials && factors.webauthn > 0);
      passkeyChoice.hidden = !withPasskey;
      document.getElementById("factor").hidden = false;
      if (via === "passkey" && e.code === "BULWARK_ERR_MFA_INVALID") {
        say("That passkey or security key was not accepted. Try again with one registered to this account, or enter a code.", "error");
        return;
      }
      document.getElementById("code").focus();
      if (e.code === "BULWARK_ERR_MFA_INVALID") say("That code was not accepted. Try the current code, or a recovery code.", "error");
      else say(withPasskey ? "Enter a code from your authenticator app or a recovery code, or use your passkey or security key." : "Enter a code from your authenticator app, or a recovery code.", "error");
      return;
    }
    say(e.message || "The password could not be changed (" + r.status + "). Ask for a new link and try again.", "error");
  }

  function resetPassword() {
    var password = newPassword();
    if (password === null) return Promise.resolve();
    var body = { token: token, newPassword: password };
    var code = document.getElementById("code").value.trim();
    if (code) {
      if (/^[0-9]{6}$/.test(code)) body.totp = code; else body.recoveryCode = code;
    }
    return post("/auth/password/reset/complete", body).then(function (r) { resetAnswered(r, "code"); });
  }

  // WebAuthn's binary fields travel as base64url text in JSON (the server's options, the assertion sent back).
  function fromBase64URL(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    var binary = atob(padded);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }
  // (No backslash in this script: it is the text of a template literal, which would eat one.)
  function toBase64URL(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/[+]/g, "-").replace(/[/]/g, "_").replace(/=+$/, "");
  }

  /** A refusal of the ceremony by the browser, told as a value so the chain goes on to say it. */
  function ceremonyFailed(error) { return { failed: error && error.name ? error.name : "Error" }; }

  // The passkey way: options asked for with this link (the server binds their challenge to it), the browser's
  // ceremony, and the assertion sent with the new password. The code field stays usable whatever happens here.
  function resetWithPasskey() {
    var password = newPassword();
    if (password === null) return Promise.resolve();
    say("Follow your browser's prompt to use your passkey or security key…", "");
    return post("/auth/password/reset/webauthn/options", { token: token }).then(function (r) {
      if (r.status !== 200 || !r.data || typeof r.data.challenge !== "string") {
        say(errorOf(r).message || "The passkey could not be asked for (" + r.status + "). Enter a code instead, or ask for a new link.", "error");
        return;
      }
      var o = r.data;
      var publicKey = {
        challenge: fromBase64URL(o.challenge),
        allowCredentials: (o.allowCredentials || []).map(function (c) {
          var descriptor = { type: c.type, id: fromBase64URL(c.id) };
          if (c.transports) descriptor.transports = c.transports;
          return descriptor;
        }),
      };
      if (o.rpId) publicKey.rpId = o.rpId;
      if (o.timeout) publicKey.timeout = o.timeout;
      if (o.userVerification) publicKey.userVerification = o.userVerification;
      if (o.extensions) publicKey.extensions = o.extensions;
      return navigator.credentials.get({ publicKey: publicKey }).then(null, ceremonyFailed).then(function (credential) {
        if (!credential || credential.failed) {
          var name = credential && credential.failed;
          // NotAllowedError covers a cancel, a timeout and a key that holds no credential of this account: the
          // browser does not tell them apart (WebAuthn L3 §5.1.4), so neither can this message.
          say(name === "NotAllowedError" || name === "AbortError" || !credential
            ? "The passkey request was cancelled or timed out, and nothing was changed. Try again, or enter a code."
            : "This browser could not use a passkey here (" + name + "), and nothing was changed. Enter a code instead.", "error");
          return;
        }
        var response = credential.response;
        var assertion = {
          id: credential.id,
          rawId: toBase64URL(credential.rawId),
          type: credential.type,
          response: {
            clientDataJSON: toBase64URL(response.clientDataJSON),
            authenticatorData: toBase64URL(response.authenticatorData),
            signature: toBase64URL(response.signature),
          },
          clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
        };
        if (response.userHandle) assertion.response.userHandle = toBase64URL(response.userHandle);
        if (credential.authenticatorAttachment) assertion.authenticatorAttachment = credential.authenticatorAttachment;
        say("Sending…", "");
        return post("/auth/password/reset/complete", { token: token, newPassword: password, webauthn: assertion })
          .then(function (answer) { resetAnswered(answer, "passkey"); });
      });
    });
  }

  function confirmEmail() {
    return post("/auth/email/confirm", { token: token }).then(function (r) {
      if (r.status === 200) {
        form.hidden = true;
        say("Your new email address is confirmed. Every session of your account was signed out; sign in with the new address.", "ok");
        return;
      }
      say(errorOf(r).message || "The address could not be confirmed (" + r.status + "). Ask for a new link and try again.", "error");
    });
  }

  // The confirmation form shows once the page knows which account the link moves (as the mail names it): a reader whose
  // account it is not is told so before the button. A link the server refuses shows its message and no form.
  if (kind === "confirm-email") {
    post("/confirm-email/account", { token: token }).then(function (r) {
      if (r.status === 200 && r.data && typeof r.data.account === "string") {
        document.getElementById("account").textContent = r.data.account;
        form.hidden = false;
        return;
      }
      say(errorOf(r).message || "This link could not be checked (" + r.status + "). Ask for a new link and try again.", "error");
    }, function () { say("The server could not be reached. Check your connection and try again.", "error"); });
  } else {
    form.hidden = false;
  }

  // Every button of the form waits while a request runs: one completion of the link at a time.
  function run(action) {
    var buttons = form.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    action()
      .catch(function () { say("The server could not be reached. Check your connection and try again.", "error"); })
      .then(function () { for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    run(function () {
      say("Sending…", "");
      return kind === "reset-password" ? resetPassword() : confirmEmail();
    });
  });
  var passkeyButton = document.getElementById("passkey");
  if (passkeyButton) passkeyButton.addEventListener("click", function () { run(resetWithPasskey); });
})();
`;

export const PAGES_CSS = `body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
main { max-width: 28rem; margin: 4rem auto; padding: 2rem; background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.service { color: #5b6475; margin: 0 0 1.5rem; }
label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
.hint { font-weight: 400; color: #5b6475; }
input { box-sizing: border-box; width: 100%; padding: .6rem; font: inherit; border: 1px solid #b8bfcc; border-radius: 4px; }
button { margin-top: 1.5rem; padding: .6rem 1.2rem; font: inherit; color: #fff; background: #1f5fbf; border: 0; border-radius: 4px; cursor: pointer; }
button.secondary { color: #1f5fbf; background: #fff; border: 1px solid #1f5fbf; margin-top: 0; }
button:disabled { opacity: .6; cursor: default; }
.error { color: #a4161a; }
.ok { color: #1b6b2f; }
[hidden] { display: none !important; }
`;
