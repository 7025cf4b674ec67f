// Text from outside (a user agent, a log line, an audit event) printed on an operator's terminal: control
// characters — C0, DEL and C1, the last being what 8-bit terminals read as CSI/OSC escapes — are shown as \xNN
// instead of being sent, so a stored value cannot move the cursor, retitle the window or hide what follows.

/**
 * `text` with every control character written as `\xNN`.
 *
 * @example
 * escapeControls("a\u009b2Jb") // "a\\x9b2Jb"
 */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
