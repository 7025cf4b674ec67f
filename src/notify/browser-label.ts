// How a notice names a browser: a label from a fixed list of families, never the User-Agent's text (the client's free
// text, which in a genuine security notice would be a phishing lure), and said to be what it calls itself.
// Browser and system families a User-Agent names, most specific first (Edge and Opera also say "Chrome", iOS says
// "like Mac OS X", Android says "Linux"). A notice shows only these fixed labels: the header is the client's free text.
const BROWSERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bEdg(?:e|A|iOS)?\//, "Microsoft Edge"],
  [/\bOPR\/|\bOpera\b/, "Opera"],
  [/\bSamsungBrowser\//, "Samsung Internet"],
  [/\bFirefox\/|\bFxiOS\//, "Firefox"],
  [/\bChrome\/|\bCriOS\/|\bChromium\//, "Chrome"],
  [/\bSafari\//, "Safari"],
];
const SYSTEMS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bWindows\b/, "Windows"],
  [/\b(?:iPhone|iPad|iPod)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bLinux\b/, "Linux"],
];

/**
 * How a notice names the browser of a User-Agent: a label from a fixed list, never the header's text, and said to be
 * what it calls itself (any client can send any User-Agent).
 *
 * @example
 * browserLabel("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36") // "a browser calling itself Chrome on Linux"
 */
export function browserLabel(userAgent: string | null): string {
  const ua = userAgent ?? "";
  const browser = BROWSERS.find(([re]) => re.test(ua))?.[1];
  const system = SYSTEMS.find(([re]) => re.test(ua))?.[1];
  if (browser === undefined && system === undefined) return "a browser or program that did not say which";
  return `a browser calling itself ${browser ?? "a browser"}${system === undefined ? "" : ` on ${system}`}`;
}
