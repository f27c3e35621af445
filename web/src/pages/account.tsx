// The person's own account: sessions (end any of them), API keys (the key shown once), two
// factors (a QR code drawn here from the otpauth URL, recovery codes) and the password. Changes of
// credentials go through withReauth: the API wants the password confirmed within 5 minutes.
import qrcode from "qrcode-generator";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, describeError, setAccessToken } from "../api";
import { withReauth } from "../reauth";
import { signOut, startSession } from "../session";
import { navigate, session, TenantChoice, useStore } from "../store";
import { Alert, CopyButton, Field, passwordHint, TableScroll, useSubmit, useTitle } from "../ui";

interface Session {
  id: string;
  current: boolean;
  started_at: string;
  expires_at: string;
  ip: string;
  user_agent: string;
  tenant_id: string | null;
  role: string | null;
}
interface APIKey {
  id: string;
  name: string;
  created_at: string;
  expires_at: string | null;
  tenant_id: string | null;
}

/** A short name for a user agent: the browser and the system, or the client's own name. */
function agent(ua: string): string {
  const browser = /(Edg|Firefox|Chrome|Chromium|Safari)\/[\d.]+/.exec(ua)?.[1];
  const system = /(Windows|Mac OS X|Android|iPhone|Linux)/.exec(ua)?.[1];
  if (browser) return `${browser === "Edg" ? "Edge" : browser}${system ? " on " + system.replace("Mac OS X", "macOS") : ""}`;
  return ua.split(" ")[0] || "Unknown client";
}

const when = (t: string | null) => (t ? new Date(t).toLocaleString() : "never");

export function Account() {
  const me = useStore(session)!;
  const [tenants, setTenants] = useState<TenantChoice[]>([]);
  useTitle("Account");
  useEffect(() => {
    api<{ items: TenantChoice[] }>("GET", "/me/tenants").then((r) => setTenants(r.items), () => {});
  }, []);
  const tenantName = (id: string | null) => (id ? tenants.find((t) => t.id === id)?.name ?? "another tenant" : "no tenant");
  return (
    <section class="account">
      <h1>Your account</h1>
      <p class="muted">
        {me.user.name} · {me.user.email}
      </p>
      <Sessions tenantName={tenantName} />
      <APIKeys tenantName={tenantName} />
      <TwoFactor />
      <Password />
    </section>
  );
}

function Sessions(props: { tenantName: (id: string | null) => string }) {
  const [items, setItems] = useState<Session[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () => api<{ items: Session[] }>("GET", "/me/sessions").then((r) => setItems(r.items), setError);
  useEffect(() => {
    load();
  }, []);
  const end = async (s: Session) => {
    if (s.current) return signOut();
    try {
      await api("DELETE", "/me/sessions/" + s.id);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div class="panel-card">
      <h2>Sessions</h2>
      <p class="hint">Every sign-in is a session. End the ones you do not recognise; then change your password.</p>
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {items && (
        <TableScroll label="Sessions">
          <table class="list">
            <caption class="sr-only">Your sessions</caption>
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Address</th>
                <th scope="col">Tenant</th>
                <th scope="col">Started</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.id}>
                  <td title={s.user_agent}>
                    {agent(s.user_agent)} {s.current && <span class="badge">this session</span>}
                  </td>
                  <td>{s.ip}</td>
                  <td>{props.tenantName(s.tenant_id)}</td>
                  <td>
                    <time dateTime={s.started_at}>{when(s.started_at)}</time>
                  </td>
                  <td class="actions">
                    <button type="button" class={s.current ? undefined : "danger"} onClick={() => end(s)} aria-label={s.current ? "Sign out of this session" : `End the session of ${agent(s.user_agent)} from ${s.ip}, started ${when(s.started_at)}`}>
                      {s.current ? "Sign out" : "End"}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </div>
  );
}

function APIKeys(props: { tenantName: (id: string | null) => string }) {
  const [items, setItems] = useState<APIKey[] | null>(null);
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("");
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null);
  const { busy, error, setError, run, act } = useSubmit();
  const load = () => api<{ items: APIKey[] }>("GET", "/me/api-keys").then((r) => setItems(r.items), setError);
  useEffect(() => {
    load();
  }, []);
  const revoke = (k: APIKey) =>
    act(async () => {
      await withReauth(() => api("DELETE", "/me/api-keys/" + k.id));
      await load();
    });
  return (
    <div class="panel-card">
      <h2>API keys</h2>
      <p class="hint">A key acts as you, with your role in the tenant of this session, for scripts and tools: send it as <code>Authorization: Bearer cdb_…</code>.</p>
      {created && (
        <Alert kind="success">
          <p>
            The key <strong>{created.name}</strong> is below. Copy it now: it is not shown again.
          </p>
          <div class="cmdline">
            <code class="secret" aria-label="The new API key">
              {created.key}
            </code>
            <CopyButton text={created.key} label="Copy the API key" />
          </div>
          <button type="button" class="linklike" onClick={() => setCreated(null)}>
            I have stored it
          </button>
        </Alert>
      )}
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {items && items.length > 0 && (
        <TableScroll label="API keys">
          <table class="list">
            <caption class="sr-only">Your API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Tenant</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td>{props.tenantName(k.tenant_id)}</td>
                  <td>
                    <time dateTime={k.created_at}>{when(k.created_at)}</time>
                  </td>
                  <td>{when(k.expires_at)}</td>
                  <td class="actions">
                    <button type="button" class="danger" onClick={() => revoke(k)} aria-label={`Revoke the key ${k.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      {items && items.length === 0 && <p class="muted">No API keys.</p>}
      <form
        class="inline-form"
        onSubmit={(e) =>
          run(e, async () => {
            const body: Record<string, string> = { name };
            if (expires) body.expires_at = new Date(expires + "T23:59:59").toISOString();
            const k = await withReauth(() => api<{ name: string; key: string }>("POST", "/me/api-keys", { body }));
            setCreated(k);
            setName("");
            setExpires("");
            await load();
          })
        }
      >
        <Field label="Key name" hint="What uses it, e.g. backup script." value={name} onInput={setName} required />
        <Field label="Expires on (optional)" type="date" value={expires} onInput={setExpires} />
        <button class="primary" type="submit" disabled={busy}>
          Create key
        </button>
      </form>
    </div>
  );
}

/** The otpauth URL as a QR code, drawn as SVG modules (dark on white, whatever the theme: that is
 * what authenticator apps read best). */
function QrCode(props: { text: string }) {
  const path = useMemo(() => {
    // Level L keeps the modules large: a screen shows the code without damage to recover from.
    const q = qrcode(0, "L");
    q.addData(props.text);
    q.make();
    const n = q.getModuleCount();
    let d = "";
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (q.isDark(r, c)) d += `M${c + 4} ${r + 4}h1v1h-1z`;
    return { d, size: n + 8 };
  }, [props.text]);
  return (
    <svg class="qr" role="img" aria-label="QR code to scan with your authenticator app" viewBox={`0 0 ${path.size} ${path.size}`} width="220" height="220" shape-rendering="crispEdges">
      <rect width={path.size} height={path.size} fill="#fff" />
      <path d={path.d} fill="#000" />
    </svg>
  );
}

function TwoFactor() {
  const me = useStore(session)!;
  const [setup, setSetup] = useState<{ secret: string; otpauth_url: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [code, setCode] = useState("");
  const [disabling, setDisabling] = useState(false);
  const { busy, error, act: step } = useSubmit();
  const enabled = me.user.totp_enabled;
  return (
    <div class="panel-card">
      <h2>Two-factor authentication</h2>
      {codes ? (
        <>
          <Alert kind="success">Two-factor authentication is on. Sign-ins now ask for a code of your app.</Alert>
          <p>
            Keep these recovery codes somewhere safe: each one signs you in once if you lose your phone. They are not shown again.
          </p>
          <ul class="codes" aria-label="Recovery codes">
            {codes.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          <div class="buttons start">
            <CopyButton text={codes.join("\n")} label="Copy the recovery codes">
              Copy all
            </CopyButton>
            <button type="button" class="primary" onClick={() => setCodes(null)}>
              I have stored them
            </button>
          </div>
        </>
      ) : enabled ? (
        <>
          <p>
            <span class="badge state-running">On</span> Sign-ins ask for a code of your authenticator app.
          </p>
          {!disabling ? (
            <button type="button" onClick={() => setDisabling(true)}>
              Turn off…
            </button>
          ) : (
            <form
              class="inline-form"
              onSubmit={(e) => {
                e.preventDefault();
                step(async () => {
                  await withReauth(() => api("POST", "/me/totp/disable", { body: { code } }));
                  setDisabling(false);
                  setCode("");
                  await startSession();
                });
              }}
            >
              <Field label="Code to turn it off" hint="A code of your app, or a recovery code." value={code} onInput={setCode} autoComplete="one-time-code" required autoFocus />
              <button class="danger" type="submit" disabled={busy}>
                Turn off two-factor authentication
              </button>
            </form>
          )}
        </>
      ) : setup ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            step(async () => {
              const r = await withReauth(() => api<{ recovery_codes: string[] }>("POST", "/me/totp/enable", { body: { code } }));
              setSetup(null);
              setCode("");
              setCodes(r.recovery_codes);
              await startSession();
            });
          }}
        >
          <p>Scan this code with an authenticator app (such as Aegis, Google Authenticator or 1Password), then enter the 6 digits it shows.</p>
          <div class="qr-row">
            <QrCode text={setup.otpauth_url} />
            <div>
              <p class="field-label">Or type this key</p>
              <div class="cmdline">
                <code class="secret">{setup.secret.replace(/(.{4})/g, "$1 ").trim()}</code>
                <CopyButton text={setup.secret} label="Copy the key" />
              </div>
            </div>
          </div>
          <Field label="Code from the app" value={code} onInput={setCode} autoComplete="one-time-code" inputMode="numeric" pattern="[0-9 ]{6,7}" required autoFocus />
          <div class="buttons start">
            <button type="button" onClick={() => setSetup(null)}>
              Cancel
            </button>
            <button class="primary" type="submit" disabled={busy}>
              Turn on
            </button>
          </div>
        </form>
      ) : (
        <>
          <p>A code of an app on your phone, on top of your password, keeps out whoever learns the password.</p>
          <button type="button" class="primary" disabled={busy} onClick={() => step(async () => setSetup(await withReauth(() => api("POST", "/me/totp/setup"))))}>
            Set up two-factor authentication
          </button>
        </>
      )}
      {error !== null && <Alert>{describeError(error)}</Alert>}
    </div>
  );
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const { busy, error, run } = useSubmit();
  return (
    <div class="panel-card">
      <h2>Password</h2>
      <p class="hint">Changing it signs out every session, this one included, and revokes your API keys.</p>
      <form
        class="inline-form"
        onSubmit={(e) =>
          run(e, async () => {
            await withReauth(() => api("PUT", "/me/password", { body: { current_password: current, new_password: next } }));
            // Every session ended with the change, this one too.
            setAccessToken(null);
            session.set(null);
            navigate("/login?reason=password_changed", true);
          })
        }
      >
        <Field label="Current password" type="password" value={current} onInput={setCurrent} autoComplete="current-password" required />
        <Field label="New password" type="password" hint={passwordHint} value={next} onInput={setNext} autoComplete="new-password" required />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy}>
          Change password
        </button>
      </form>
    </div>
  );
}

