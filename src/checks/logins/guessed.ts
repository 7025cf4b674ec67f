// `logins.guessed-account`: one account guessed slowly from many addresses (a botnet trying a password per address per
// hour), the opposite shape of a spraying address, and the sign-ins from browsers new to it once the guessing began.
// Flood control stops such a campaign only at 100 failures in a row, and the owner's own sign-ins reset that streak, so
// `logins.after-failures` (failures in a row before a sign-in) misses the guess that worked after the owner signed in.
import type { Database } from "../../store/database.ts";
import type { Finding, Severity } from "../finding.ts";
import { clientsByAccount, failedByAccount, guessesByAccount, MAX_GUESSED, type AccountClients, type AccountFailures, type SlowRange } from "./queries.ts";
import { emailsOf, REMEDY, SignInList, type SignIn } from "./sign-ins.ts";

/** Accounts reported one by one, the most severe first; the rest are one finding, as severe as the worst of them. */
const MAX_FINDINGS = 20;
/** Accounts listed in `--json` (`guessedAccounts`) and in the findings' evidence, in the order of the findings. */
const MAX_LISTED = 100;
/**
 * Sign-ins from new browsers kept, when the list was cut, for accounts past it (read on their own afterwards), and
 * times of sign-ins from known browsers to them (for `knownBrowserSignIns` alone; a lower bound past it): bounded memory.
 */
const MAX_CANDIDATE_SIGN_INS = 100_000;

/** One account being guessed, as `--json` lists it. */
export interface GuessedAccount {
  userId: string;
  email: string | null;
  /** Failed logins in the window and the day before it (SlowRange): a campaign split between two runs' windows is counted whole. */
  failed: number;
  /** Those in the window. */
  failedInWindow: number;
  /** Distinct clients as flood control counts them (an IPv6 /64 is one; an IPv4 address is one whatever its spelling). */
  clients: number;
  /** False when the account failed from more addresses than are read to count them: `clients` and `addresses` are then lower bounds. */
  clientsComplete: boolean;
  /** Distinct addresses as written. */
  addresses: number;
  firstFailure: string;
  lastFailure: string;
  /** Sign-ins from a browser new to the account at or after its first failure in the window: a guess that may have worked. */
  newDeviceSignIns: number;
  /** Sign-ins from browsers it already knew over the same time: its owner's, as a rule. */
  knownBrowserSignIns: number;
  /** When the account itself changed its email address after a listed sign-in from a new browser (SignIn.emailChangedAt): `email` may then be the intruder's. */
  emailChangedAt: string | null;
}

interface Tracked {
  row: AccountFailures;
  list: SignInList | null;
  known: number;
}

/** What the rule is run with: the window and the day before it, the bar, and the streak that ranks sign-ins (SignInList). */
export interface GuessOptions extends SlowRange {
  guessMin: number;
  streak: number;
  /**
   * The days before the window its failures are counted over (`from`), for the report's words; 1 unless the range is
   * the longer horizon (GuessedAccounts.readSlow).
   */
  days?: number;
  /** Sign-ins before this are not judged (the longer horizon judges those of its own run only); default none. */
  signInsNotBefore?: number;
  /** The clients an account must have failed from (the longer horizon's bar), for the report's words. */
  minClients?: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The accounts of a window that took at least `guessMin` failed logins, and the sign-ins to them: read once before
 * the window's sign-ins are scanned (`signedIn` is told each), finished after.
 *
 * @example
 * const guessed = await GuessedAccounts.read(database, { from: since - DAY, since, until, guessMin: 20, streak: 5 });
 * for await (const { at, signIn } of signIns(database, guessed.signInsFrom, until, 5000)) guessed.signedIn(at, signIn);
 * await guessed.finish(database);
 */
export class GuessedAccounts {
  readonly #accounts: Map<string, Tracked>;
  readonly #options: GuessOptions;
  /** Accounts at or above the bar (more than were kept when the bound cut the list). */
  readonly total: number;
  readonly cut: boolean;
  /** Sign-ins from new browsers to accounts past the cut, judged in `finish` once their failures are read. */
  readonly #candidates = new Map<string, Array<{ at: number; signIn: SignIn }>>();
  #candidateSignIns = 0;
  #candidatesCut = false;
  /** Times of sign-ins from known browsers to accounts past the cut, for those read in `finish`. */
  readonly #knownPast = new Map<string, number[]>();
  #knownPastCount = 0;
  #truncated = false;
  /** The clients of the accounts held, when read before (readSlow); else read for the report. */
  #clients: Map<string, AccountClients> | null = null;

  constructor(accounts: AccountFailures[], total: number, cut: boolean, options: GuessOptions) {
    this.#accounts = new Map(accounts.map((row) => [row.userId, { row, list: null, known: 0 }]));
    this.total = total;
    this.cut = cut;
    this.#options = options;
  }

  /** Sign-ins to accounts past the cut were more than are kept to judge them: some may be missing (the report says so). */
  get candidatesCut(): boolean {
    return this.#candidatesCut;
  }

  static async read(database: Database, options: GuessOptions): Promise<GuessedAccounts> {
    const { accounts, total, cut } = await failedByAccount(database, options, options.guessMin);
    return new GuessedAccounts(accounts, total, cut, options);
  }

  /**
   * The same rule over a longer horizon (`from`: the `days` before the window), for a guessing too slow for any 48
   * hours: a few tries a day from fresh addresses, the owner's own sign-ins resetting the failures in a row, reach the
   * bar in a week and never in two days. Only accounts not in `except` (the rule over the day before) that failed
   * `guessMin` times from at least `minClients` clients, typos left out (guessesByAccount), count: an owner mistyping
   * from home every day is one client, and one who corrects each typo at once from a phone on a new address each time
   * makes no guess. Sign-ins are judged from
   * `signInsNotBefore` (this run's own), so no week of them is read again each day. The MAX_GUESSED accounts with the
   * most failures are kept; past them, nothing is judged on this horizon (the day's rule still is).
   */
  static async readSlow(database: Database, options: GuessOptions & { days: number; minClients: number; signInsNotBefore: number }, except: GuessedAccounts): Promise<GuessedAccounts> {
    // As many more rows as `except` holds: the day's accounts, read again here, must not push the week's own past the cap.
    const { accounts, cut } = await failedByAccount(database, options, options.guessMin, { limit: MAX_GUESSED + except.#accounts.size });
    const fresh = accounts.filter((a) => !except.#accounts.has(a.userId));
    // Typos (each corrected at once by the owner's own sign-in) are not guesses: neither their failures nor their
    // addresses count toward the bars.
    const clients = await guessesByAccount(database, options.from, options.until, fresh.slice(0, MAX_GUESSED).map((a) => a.userId));
    const kept = fresh.slice(0, MAX_GUESSED).filter((a) => {
      const guesses = clients.get(a.userId);
      return guesses !== undefined && guesses.failed >= options.guessMin && guesses.clients >= options.minClients;
    });
    const slow = new GuessedAccounts(kept, kept.length, false, options);
    slow.#truncated = cut || fresh.length > MAX_GUESSED;
    // Read already, over the same range: the report lists them without asking again.
    slow.#clients = clients;
    return slow;
  }

  /** readSlow kept the MAX_GUESSED accounts with the most failures over the week, and there were more (the report says so). */
  get truncated(): boolean {
    return this.#truncated;
  }

  /**
   * Where the sign-ins this rule judges begin: the first failure of an account it tracks (a guess that worked the day
   * before the window, in a campaign the run before saw only half of), or the range's start when the list was cut (an
   * account past it is judged from its own first failure, read in finish); the window's start when no guessing began
   * before it.
   */
  get signInsFrom(): number {
    const notBefore = this.#options.signInsNotBefore ?? -Infinity;
    if (this.cut) return Math.max(this.#options.from, notBefore);
    let first = this.#options.since;
    for (const t of this.#accounts.values()) first = Math.min(first, t.row.firstAt);
    return Math.max(first, notBefore);
  }

  /**
   * A sign-in at or after `signInsFrom`. True when it makes its account reported: from a browser new to an
   * account being guessed, at or after the first of its failures (before it, nothing had been guessed yet).
   */
  signedIn(at: number, signIn: SignIn): boolean {
    const tracked = this.#accounts.get(signIn.userId);
    if (tracked === undefined) {
      // Past the cut, an account is judged only if a new browser signed in to it: those sign-ins are kept (bounded)
      // and its failures read on their own in finish(), so a campaign naming 10,000 accounts more often than its
      // victim does not push the victim out of the report. Sign-ins from known browsers never take that room.
      if (this.cut && signIn.newDevice === false && this.#knownPastCount < MAX_CANDIDATE_SIGN_INS) {
        this.#knownPastCount++;
        const times = this.#knownPast.get(signIn.userId);
        if (times) times.push(at);
        else this.#knownPast.set(signIn.userId, [at]);
      }
      if (this.cut && signIn.newDevice === true) {
        const kept = this.#candidates.get(signIn.userId);
        if (this.#candidateSignIns >= MAX_CANDIDATE_SIGN_INS || (kept === undefined && this.#candidates.size >= MAX_GUESSED)) this.#candidatesCut = true;
        else {
          this.#candidateSignIns++;
          if (kept) kept.push({ at, signIn });
          else this.#candidates.set(signIn.userId, [{ at, signIn }]);
        }
      }
      return false;
    }
    return this.#judge(tracked, at, signIn);
  }

  #judge(tracked: Tracked, at: number, signIn: SignIn): boolean {
    if (at < tracked.row.firstAt || at < (this.#options.signInsNotBefore ?? -Infinity)) return false;
    if (signIn.newDevice === false) tracked.known++;
    if (signIn.newDevice !== true) return false;
    (tracked.list ??= new SignInList(this.#options.streak)).add(signIn);
    return true;
  }

  /**
   * After the scan: the accounts past the cut that a new browser signed in to are read on their own (the failures of
   * at most MAX_GUESSED of them, one query), and those at the bar judged. Returns the accounts this made reported.
   */
  async finish(database: Database): Promise<string[]> {
    if (this.#candidates.size === 0) return [];
    const { accounts } = await failedByAccount(database, this.#options, this.#options.guessMin, { only: [...this.#candidates.keys()] });
    const reported: string[] = [];
    for (const row of accounts) {
      const known = (this.#knownPast.get(row.userId) ?? []).filter((at) => at >= row.firstAt).length;
      const tracked: Tracked = { row, list: null, known };
      this.#accounts.set(row.userId, tracked);
      let got = false;
      for (const { at, signIn } of this.#candidates.get(row.userId) ?? []) got = this.#judge(tracked, at, signIn) || got;
      if (got) reported.push(row.userId);
    }
    this.#candidates.clear();
    this.#knownPast.clear();
    return reported;
  }

  /**
   * Accounts at the bar past the cut that were counted only: no new browser signed in to them in the window (those one
   * did were read and judged in finish), unless `candidatesCut`.
   */
  get notRead(): number {
    return Math.max(0, this.total - this.#accounts.size);
  }

  /** The sign-in lists (for their emails). */
  lists(): SignInList[] {
    return [...this.#accounts.values()].flatMap((t) => (t.list ? [t.list] : []));
  }

  /**
   * The findings (the MAX_FINDINGS most severe accounts one each: those a new browser signed in to first, then the
   * most failures; the rest one finding) and the MAX_LISTED accounts listed, with their clients and emails.
   */
  async report(database: Database): Promise<{ accounts: GuessedAccount[]; findings: Finding[] }> {
    const got = (t: Tracked): number => t.list?.count ?? 0;
    const order = [...this.#accounts.values()].sort((a, b) =>
      (got(b) > 0 ? 1 : 0) - (got(a) > 0 ? 1 : 0) || b.row.failed - a.row.failed || (a.row.userId < b.row.userId ? -1 : a.row.userId > b.row.userId ? 1 : 0));
    const listedIds = order.slice(0, MAX_LISTED).map((t) => t.row.userId);
    const { from, until } = this.#options;
    const clients = this.#clients ?? (await clientsByAccount(database, from, until, listedIds));
    const emails = await emailsOf(database, listedIds);
    const accounts: GuessedAccount[] = order.slice(0, MAX_LISTED).map((t) => ({
      userId: t.row.userId, email: emails.get(t.row.userId) ?? null, failed: t.row.failed, failedInWindow: t.row.failedInWindow,
      clients: clients.get(t.row.userId)?.clients ?? 0, clientsComplete: clients.get(t.row.userId)?.complete ?? false,
      addresses: clients.get(t.row.userId)?.addresses ?? 0, firstFailure: iso(t.row.firstAt), lastFailure: iso(t.row.lastAt), newDeviceSignIns: got(t), knownBrowserSignIns: t.known,
      emailChangedAt: t.list?.items().find((s) => s.emailChangedAt !== null)?.emailChangedAt ?? null,
    }));
    const findings = order.slice(0, MAX_FINDINGS).map((t, i) => this.#one(t, accounts[i]!));
    const rest = order.slice(MAX_FINDINGS);
    if (rest.length > 0 || this.notRead > 0) findings.push(this.#summary(rest, accounts.slice(MAX_FINDINGS)));
    return { accounts, findings };
  }

  #one(t: Tracked, account: GuessedAccount): Finding {
    const { guessMin } = this.#options;
    const days = this.#options.days ?? 1;
    const signIns = t.list?.items() ?? [];
    const count = t.list?.count ?? 0;
    const { userId, email, ...facts } = account;
    // After a takeover the account's address is the intruder's: the account is named by its id, the address as moved.
    const name = account.emailChangedAt === null ? (email ?? userId) : `${userId} (now ${email ?? "?"})`;
    const from = `${account.clients}${account.clientsComplete ? "" : " or more"} client(s)`;
    return {
      id: "logins.guessed-account",
      severity: count > 0 ? "high" : "medium",
      title: count > 0
        ? `${name}: ${account.failed} failed logins from ${from}, then ${count} sign-in(s) from a browser new to it${account.emailChangedAt === null ? "" : `, then the account changed its email address (${account.emailChangedAt})`}`
        : `${name}: ${account.failed} failed logins from ${from}`,
      detail:
        `The account ${email ?? userId} (${account.userId}) took ${account.failed} failed logins (--guess-min ${guessMin}${days > 1 ? ` over the window and the ${days} days before it, from at least ${this.#options.minClients ?? 1} clients, typos each corrected at once by the owner's sign-in left out: a guessing too slow for any 48 hours` : ""}) from ${from} (${account.addresses}${account.clientsComplete ? "" : " or more"} address(es) as written; ` +
        `an IPv6 /64 is one client, an IPv4 address one whatever its spelling, as flood control counts them) between ${account.firstFailure} and ${account.lastFailure}` +
        `${account.failedInWindow < account.failed ? `, ${account.failedInWindow} of them in the window and the rest in the ${days > 1 ? `${days} days` : "24 hours"} before it` : ""}: ` +
        "someone guessing its password at a pace and from enough addresses that no limit stops them (flood control stops an account only at 100 failures in a row, and each sign-in of its owner starts that count again). " +
        (count > 0
          ? `${count} sign-in(s) from a browser new to it came after the first of them, a guess that may have worked: ${SignInList.describe(signIns.slice(0, 10))}${count > 10 ? ", …" : ""}.`
          : `No browser new to it signed in after the first of them${account.knownBrowserSignIns > 0 ? ` (${account.knownBrowserSignIns} sign-in(s) from browsers it already knew: its owner's, as a rule)` : ""}.`),
      evidence: { account: { userId, email }, ...facts, guessMin, signIns, signInsCount: count, ...SignInList.others(t.list ? [t.list] : [], signIns) },
      remediation: count > 0 ? REMEDY : HELD,
    };
  }

  #summary(rest: Tracked[], listed: GuessedAccount[]): Finding {
    const lists = rest.flatMap((t) => (t.list ? [t.list] : []));
    const list = SignInList.merge(lists);
    const count = rest.reduce((n, t) => n + (t.list?.count ?? 0), 0);
    const failed = rest.reduce((n, t) => n + t.row.failed, 0);
    const severity: Severity = count > 0 ? "high" : "medium";
    const notRead = this.notRead;
    return {
      id: "logins.guessed-account",
      severity,
      title: `${rest.length + notRead} more account(s) each took ${this.#options.guessMin} or more failed logins, summed here`,
      detail:
        `${rest.length} more account(s) were each guessed at (${failed} failed logins in all)${listed.length > 0 ? `: ${listed.slice(0, 5).map((a) => `${a.email ?? "?"} (${a.userId}, ${a.failed} failures${a.emailChangedAt === null ? "" : `; its email address changed after the sign-in, ${a.emailChangedAt}`})`).join("; ")}${rest.length > 5 ? "; …" : ""}` : ""}. ` +
        `${count} sign-in(s) from a browser new to its account came after the account's first failure${list.length > 0 ? `: ${SignInList.describe(list.slice(0, 10))}${count > 10 ? ", …" : ""}` : ""}.` +
        (notRead > 0
          ? ` ${notRead} more account(s) reached the bar past the ${MAX_GUESSED} with the most failures and are counted only: ` +
            (this.#candidatesCut
              ? "the sign-ins from new browsers to such accounts were more than are kept to judge them (logins.analysis-incomplete)."
              : "no browser new to one of them signed in during the window (those a new browser signed in to were read and judged).")
          : ""),
      evidence: { accounts: listed, accountsCount: rest.length, accountsCountedOnly: notRead, failed, guessMin: this.#options.guessMin, signIns: list, signInsCount: count, ...SignInList.others(lists, list) },
      remediation: count > 0 ? REMEDY : HELD,
    };
  }
}

const HELD =
  "No browser new to the account signed in after the guessing began: its password held so far. The guesses come from many addresses, each under " +
  "flood control's limits, so blocking them upstream helps little; tell the owner, who should choose a long password used nowhere else and enrol a second factor.";
