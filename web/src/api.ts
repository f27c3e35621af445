// The console's only way to the HTTP API (API.md). The access token lives in this module's memory
// and nowhere else; the refresh token lives in an httpOnly cookie that script cannot read
// (docs/SECURITY.md, "The web console"). A 401 on an expired access token refreshes once,
// silently, and repeats the request.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, any>,
    readonly retryAfter: number | null,
  ) {
    super(message);
  }
}

export interface TenantRef {
  id: string;
  slug: string;
  name: string;
  role: "viewer" | "developer" | "tenant_admin";
}

export interface TokenPair {
  access_token: string;
  expires_in: number;
  tenant: TenantRef | null;
}

const consoleHeader = { "X-CloudDB-Console": "1" };

let accessToken: string | null = null;
let refreshing: Promise<TokenPair | null> | null = null;
let onSessionLost: () => void = () => {};

/** Sets the in-memory access token (null on sign-out). */
export function setAccessToken(token: string | null) {
  accessToken = token;
}

/** Called when a request finds the session gone and refreshing cannot bring it back. */
export function whenSessionLost(f: () => void) {
  onSessionLost = f;
}

interface Options {
  body?: unknown;
  /** Sends and receives the console's cookies: login, refresh and logout only. */
  cookies?: boolean;
  signal?: AbortSignal;
}

async function send(method: string, path: string, opts: Options): Promise<Response> {
  const headers: Record<string, string> = { ...consoleHeader };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (accessToken) headers["Authorization"] = "Bearer " + accessToken;
  return fetch("/api/v1" + path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    // Every other request is authenticated by its header alone: no cookie rides along.
    credentials: opts.cookies ? "same-origin" : "omit",
    signal: opts.signal,
  });
}

/** The error code of a response, read from a copy so that the response can still be parsed. */
async function errorCode(res: Response): Promise<string> {
  try {
    return (await res.clone().json())?.error?.code ?? "";
  } catch {
    return "";
  }
}

async function parse<T>(res: Response): Promise<T> {
  const text = await res.text();
  let doc: any = null;
  if (text) {
    try {
      doc = JSON.parse(text);
    } catch {
      doc = null;
    }
  }
  if (res.ok) return doc as T;
  const retry = Number(res.headers.get("Retry-After"));
  const e = doc?.error;
  throw new ApiError(
    res.status,
    e?.code ?? "http_" + res.status,
    e?.message ?? `The server answered ${res.status} ${res.statusText}.`,
    e?.details ?? {},
    Number.isFinite(retry) && retry > 0 ? retry : null,
  );
}

/**
 * Calls the API; a 401 unauthenticated with a token in hand (the access token expired) refreshes
 * once and tries again. Other 401s (a wrong password, reauthentication_required) are answers to
 * the request itself: refreshing would spend a refresh token for nothing.
 */
export async function api<T = any>(method: string, path: string, opts: Options = {}): Promise<T> {
  return parse<T>(await request(method, path, opts));
}

async function request(method: string, path: string, opts: Options): Promise<Response> {
  const hadToken = accessToken !== null;
  let res = await send(method, path, opts);
  if (res.status === 401 && hadToken && (await errorCode(res)) === "unauthenticated") {
    const pair = await refresh();
    if (!pair) {
      onSessionLost();
    } else {
      res = await send(method, path, opts);
    }
  }
  return res;
}

/**
 * Downloads a file the API streams (an export) under the name its Content-Disposition gives. The
 * request needs the Authorization header, which a plain link cannot send, so the body is read
 * into a Blob and saved from there.
 */
export async function download(path: string, fallbackName: string): Promise<void> {
  const res = await request("GET", path, {});
  if (!res.ok) await parse(res); // throws the API's error
  const name = /filename="?([^";]+)"?/.exec(res.headers.get("Content-Disposition") ?? "")?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Trades the refresh cookie for a new access token; null when there is no live session. One
 * refresh at a time in this tab, and across tabs through a Web Lock: a refresh token is single
 * use, and two tabs presenting the same one would end the session.
 */
export function refresh(): Promise<TokenPair | null> {
  if (!refreshing) {
    const run = async (): Promise<TokenPair | null> => {
      const res = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { ...consoleHeader, "Content-Type": "application/json" },
        body: "{}",
        credentials: "same-origin",
      });
      if (!res.ok) {
        accessToken = null;
        return null;
      }
      const pair = (await res.json()) as TokenPair;
      accessToken = pair.access_token;
      return pair;
    };
    const locked = navigator.locks ? navigator.locks.request("clouddb-refresh", run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export async function login(body: { email: string; password: string; tenant?: string; totp_code?: string }) {
  const pair = await api<TokenPair & { user: { id: string; email: string; name: string } }>("POST", "/auth/login", {
    body,
    cookies: true,
  });
  accessToken = pair.access_token;
  return pair;
}

export async function logout() {
  try {
    await api("POST", "/auth/logout", { cookies: true });
  } finally {
    accessToken = null;
  }
}

/** Words for an error, with the wait the server asked for when it asked for one. */
export function describeError(e: unknown): string {
  if (!(e instanceof ApiError)) return e instanceof Error ? e.message : String(e);
  let msg = e.message;
  if (e.retryAfter && (e.code === "rate_limited" || e.code === "account_locked")) {
    msg = msg.replace(/[;,]\s*try again later\.?$/i, ".") + ` Try again in ${formatWait(e.retryAfter)}.`;
  }
  return msg;
}

export function formatWait(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const m = Math.ceil(seconds / 60);
  return m === 1 ? "1 minute" : `${m} minutes`;
}
