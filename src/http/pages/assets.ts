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

  function resetPassword() {
    var password = document.getElementById("password").value;
    if (password !== document.getElementById("confirm").value) {
      say("The two passwords are not the same.", "error");
      return Promise.resolve();
    }
    var body = { token: token, newPassword: password };
    var code = document.getElementById("code").value.trim();
    if (code) {
      if (/^[0-9]{6}$/.test(code)) body.totp = code; else body.recoveryCode = code;
    }
    return post("/auth/password/reset/complete", body).then(function (r) {
      if (r.status === 200) {
        // Emptied, not only hidden: the new password does not stay in the page for a script or an onlooker.
        form.reset();
        form.hidden = true;
        say("Your password was changed, and every session of your account was signed out. Sign in with the new password.", "ok");
        return;
      }
      var e = errorOf(r);
      if (e.code === "BULWARK_ERR_MFA_REQUIRED" || e.code === "BULWARK_ERR_MFA_INVALID") {
        document.getElementById("factor").hidden = false;
        document.getElementById("code").focus();
        say(e.code === "BULWARK_ERR_MFA_INVALID" ? "That code was not accepted. Try the current code, or a recovery code." : "Enter a code from your authenticator app, or a recovery code.", "error");
        return;
      }
      say(e.message || "The password could not be changed (" + r.status + "). Ask for a new link and try again.", "error");
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

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button");
    button.disabled = true;
    say("Sending…", "");
    (kind === "reset-password" ? resetPassword() : confirmEmail())
      .catch(function () { say("The server could not be reached. Check your connection and try again.", "error"); })
      .then(function () { button.disabled = false; });
  });
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
button:disabled { opacity: .6; cursor: default; }
.error { color: #a4161a; }
.ok { color: #1b6b2f; }
[hidden] { display: none !important; }
`;
