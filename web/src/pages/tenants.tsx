// Tenants: creating one, and the current one's plan and usage against the plan's limits.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, describeError, login } from "../api";
import { startSession } from "../session";
import { navigate, session, TenantChoice, useStore } from "../store";
import { Alert, Dialog, Field, formatBytes, TableScroll, UsageBar, useSubmit, useTitle } from "../ui";

/** Creating a tenant; a person without one lands here after their first sign-in. The new tenant
 * needs a sign-in, after which the console goes on to next. */
export function CreateTenant(props: { next?: string; embedded?: boolean }) {
  const me = useStore(session)!;
  const [name, setName] = useState("");
  const { busy, error, run } = useSubmit();
  useTitle(props.embedded ? "Welcome" : "New tenant");
  const Heading = props.embedded ? "h2" : "h1";
  return (
    <section class="narrow">
      <Heading>{me.tenant ? "Create a tenant" : props.embedded ? "Your tenant" : "Welcome! Create your tenant"}</Heading>
      <p>A tenant holds your databases and the people you work with. You can invite them once it exists.</p>
      <form
        onSubmit={(e) =>
          run(e, async () => {
            const t = await api<{ slug: string }>("POST", "/tenants", { body: { name } });
            // A session belongs to the tenant it was opened in: the new one needs a sign-in.
            navigate(`/login?tenant=${encodeURIComponent(t.slug)}&email=${encodeURIComponent(me.user.email)}&next=${encodeURIComponent(props.next ?? "/databases")}`);
          })
        }
      >
        <Field label="Tenant name" hint="Your team or company, e.g. Acme." value={name} onInput={setName} required autoFocus />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy}>
          Create tenant
        </button>
      </form>
    </section>
  );
}

/**
 * Switching to another tenant of the same person. A session belongs to one tenant and the API
 * opens one only by POST /auth/login with the password (docs/ARCHITECTURE.md, "The console"): the
 * switch asks for the password of the signed-in address (and the two-factor code) in place, and
 * ends the session it leaves, which the new refresh cookie has made unreachable anyway. Cancelled
 * or refused, the person stays where they were.
 */
export function SwitchTenant(props: { to: TenantChoice; onClose: () => void }) {
  const me = useStore(session)!;
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needCode, setNeedCode] = useState(me.user.totp_enabled);
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) =>
    run(e, async () => {
      try {
        await login({ email: me.user.email, password, tenant: props.to.id, totp_code: needCode ? code : undefined });
      } catch (err) {
        if (err instanceof ApiError && err.code === "totp_required" && !needCode) return setNeedCode(true);
        throw err;
      }
      if (me.session) await api("DELETE", `/me/sessions/${me.session.id}`).catch(() => {});
      await startSession();
      props.onClose();
      navigate("/databases");
    });
  return (
    <Dialog title={`Switch to ${props.to.name}`} onClose={props.onClose}>
      <p>
        A session belongs to one tenant: confirm your password to sign in to {props.to.name} as <strong>{me.user.email}</strong>, with your role there ({props.to.role.replace("_", " ")}).
      </p>
      <form onSubmit={submit} aria-busy={busy}>
        {/* For password managers: the address the password belongs to. */}
        <input type="email" name="email" autoComplete="username" value={me.user.email} readOnly hidden />
        <Field label="Your password" type="password" value={password} onInput={setPassword} autoComplete="current-password" required autoFocus />
        {needCode && (
          <Field label="Authentication code" hint="From your authenticator app, or a recovery code." value={code} onInput={setCode} autoComplete="one-time-code" required />
        )}
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Switch
          </button>
        </div>
      </form>
    </Dialog>
  );
}

interface Limits {
  max_databases: number;
  max_storage_bytes: number;
  max_connections: number;
  max_users: number;
  max_query_timeout_s: number;
  max_row_limit: number;
  result_archiving: boolean;
}
export interface TenantDoc {
  id: string;
  slug: string;
  name: string;
  plan: string;
  limits: Limits;
  usage: { databases: number; storage_bytes: number; connections: number; users: number };
  settings: { query_timeout_s: number; row_limit: number; idle_timeout_minutes: number; auto_stop_minutes: number };
}
interface Plan {
  id: string;
  name: string;
  limits: Limits;
}

/** The current tenant: its plan, what it uses of the plan's limits, and the other plans. */
export function TenantPage() {
  const me = useStore(session)!;
  const [tenant, setTenant] = useState<TenantDoc | null>(null);
  const [plans, setPlans] = useState<Plan[]>([]);
  const [error, setError] = useState<unknown>(null);
  useTitle(tenant?.name ?? "Tenant");
  useEffect(() => {
    api<TenantDoc>("GET", "/tenant").then(setTenant, setError);
    api<{ items: Plan[] }>("GET", "/plans").then((r) => setPlans(r.items), () => {});
  }, [me.tenant?.id]);
  if (error !== null) return <Alert>{describeError(error)}</Alert>;
  if (!tenant) return <p class="loading">Loading…</p>;
  const plan = plans.find((p) => p.id === tenant.plan);
  const l = tenant.limits;
  const u = tenant.usage;
  return (
    <section>
      <div class="page-head">
        <h1>{tenant.name}</h1>
        <span class="badge">{plan?.name ?? tenant.plan} plan</span>
      </div>
      <p class="muted">
        Slug <code>{tenant.slug}</code> · your role: {me.tenant!.role.replace("_", " ")}
      </p>
      <div class="cards">
        <div class="panel-card">
          <h2>Usage</h2>
          <UsageBar label="Databases" used={u.databases} limit={l.max_databases} />
          <UsageBar label="Storage" used={u.storage_bytes} limit={l.max_storage_bytes} format={formatBytes} />
          <UsageBar label="Connections" used={u.connections} limit={l.max_connections} />
          <UsageBar label="Members" used={u.users} limit={l.max_users} />
        </div>
        <div class="panel-card">
          <h2>Limits of a query</h2>
          <dl class="kv">
            <div>
              <dt>Timeout</dt>
              <dd>
                {tenant.settings.query_timeout_s} s (plan: up to {l.max_query_timeout_s} s)
              </dd>
            </div>
            <div>
              <dt>Rows</dt>
              <dd>
                {tenant.settings.row_limit.toLocaleString()} (plan: up to {l.max_row_limit.toLocaleString()})
              </dd>
            </div>
            <div>
              <dt>Archiving</dt>
              <dd>{l.result_archiving ? "Results can be kept beyond 15 minutes" : "Not on this plan"}</dd>
            </div>
            <div>
              <dt>Idle sessions</dt>
              <dd>end after {tenant.settings.idle_timeout_minutes} minutes</dd>
            </div>
          </dl>
        </div>
      </div>
      {plans.length > 0 && (
        <>
          <h2>Plans</h2>
          <TableScroll label="Plans">
            <table class="list">
              <caption class="sr-only">The plans and their limits</caption>
              <thead>
                <tr>
                  <th scope="col">Plan</th>
                  <th scope="col" class="num">
                    Databases
                  </th>
                  <th scope="col" class="num">
                    Storage
                  </th>
                  <th scope="col" class="num">
                    Connections
                  </th>
                  <th scope="col" class="num">
                    Members
                  </th>
                  <th scope="col" class="num">
                    Rows per query
                  </th>
                  <th scope="col">Archiving</th>
                </tr>
              </thead>
              <tbody>
                {plans.map((p) => (
                  <tr key={p.id} class={p.id === tenant.plan ? "current" : undefined}>
                    <th scope="row">
                      {p.name}
                      {p.id === tenant.plan && <span class="muted"> (current)</span>}
                    </th>
                    <td class="num">{p.limits.max_databases.toLocaleString()}</td>
                    <td class="num">{formatBytes(p.limits.max_storage_bytes)}</td>
                    <td class="num">{p.limits.max_connections.toLocaleString()}</td>
                    <td class="num">{p.limits.max_users.toLocaleString()}</td>
                    <td class="num">{p.limits.max_row_limit.toLocaleString()}</td>
                    <td>{p.limits.result_archiving ? "Yes" : "No"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          <p class="hint">The platform's administrators change a tenant's plan.</p>
        </>
      )}
    </section>
  );
}
