// The tenant's databases: list with state and usage, create (after showing what the creation
// uses of the quota), connection details, stop and start, rotate credentials, change owner,
// delete by typing the name and restore within the recovery window. Provisioning is followed
// until the database is ready.
import { useEffect, useState } from "preact/hooks";
import { api, describeError } from "../api";
import { withReauth } from "../reauth";
import { can, Me, session, useStore } from "../store";
import { Alert, CopyButton, Dialog, Field, formatBytes, Link, useSubmit, useTitle } from "../ui";

export interface Database {
  id: string;
  name: string;
  state: "provisioning" | "running" | "stopped" | "deleted" | "failed";
  charset: string;
  collation: string;
  created_at: string;
  storage_bytes: number;
  owner_id: string;
  recoverable_until?: string;
  failure_reason?: string;
}

/** Who may see and rotate a database's read-write password: its owner while a developer or more,
 * and tenant admins (domain.MaySeeReadWrite decides; the API refuses the others). */
export function maySeePassword(me: Me, db: Database): boolean {
  const role = me.tenant?.role;
  return role === "tenant_admin" || (role === "developer" && db.owner_id === me.user.id);
}

/** Whether a deleted database can still be restored. */
function restorable(d: Database): boolean {
  return d.state === "deleted" && !!d.recoverable_until && new Date(d.recoverable_until).getTime() > Date.now();
}

const stateLabel: Record<Database["state"], string> = {
  provisioning: "Provisioning…",
  running: "Running",
  stopped: "Stopped",
  deleted: "Deleted",
  failed: "Failed",
};

export function StateBadge(props: { state: Database["state"] }) {
  return <span class={"badge state-" + props.state}>{stateLabel[props.state] ?? props.state}</span>;
}

export function Databases() {
  const me = useStore(session)!;
  const writer = can(me, "databases:write");
  const [items, setItems] = useState<Database[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Database | null>(null);
  const [connecting, setConnecting] = useState<Database | null>(null);
  const [owning, setOwning] = useState<Database | null>(null);
  const [showDeleted, setShowDeleted] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const admin = me.tenant!.role === "tenant_admin";
  useTitle("Databases");

  const load = () =>
    api<{ items: Database[] }>("GET", "/databases?include_deleted=true").then(
      (r) => {
        setItems(r.items);
        setError(null);
      },
      setError,
    );
  useEffect(() => {
    load();
  }, []);
  // Provisioning takes a few seconds: look again until no database is on its way.
  const provisioning = items?.some((d) => d.state === "provisioning");
  useEffect(() => {
    if (!provisioning) return;
    const t = setInterval(load, 1000);
    return () => clearInterval(t);
  }, [provisioning]);

  const act = async (d: Database, action: "start" | "stop" | "restore") => {
    setBusy(d.id);
    try {
      await api("POST", `/databases/${d.id}/${action}`);
      await load();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  const live = (items ?? []).filter((d) => d.state !== "deleted");
  const deleted = (items ?? []).filter(restorable);
  const shown = showDeleted ? [...live, ...deleted] : live;

  return (
    <section>
      <div class="page-head">
        <h1>Databases</h1>
        {writer && (
          <button class="primary" type="button" onClick={() => setCreating(true)}>
            New database
          </button>
        )}
      </div>
      {!writer && <Alert kind="info">Your role ({me.tenant!.role}) can open databases and read them; creating and changing them is for developers and admins.</Alert>}
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {items === null ? (
        <p class="loading">Loading…</p>
      ) : live.length === 0 && !showDeleted ? (
        <p class="empty">No databases yet.{writer && " Create one to start: the sample template comes with a few tables to query."}</p>
      ) : (
        <table class="list">
          <caption class="sr-only">Databases of {me.tenant!.name}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col" class="num">
                Storage
              </th>
              <th scope="col">Character set</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((d) => (
              <tr key={d.id}>
                <td>
                  {d.state === "running" || d.state === "stopped" ? <Link href={"/databases/" + d.id}>{d.name}</Link> : d.name}
                  {d.failure_reason && <div class="hint">{d.failure_reason}</div>}
                  {d.recoverable_until && (
                    <div class="hint">
                      Restorable until <time dateTime={d.recoverable_until}>{new Date(d.recoverable_until).toLocaleString()}</time>
                    </div>
                  )}
                </td>
                <td>
                  <StateBadge state={d.state} />
                </td>
                <td class="num">{formatBytes(d.storage_bytes)}</td>
                <td>
                  {d.charset} <span class="muted">{d.collation}</span>
                </td>
                <td>
                  <time dateTime={d.created_at}>{new Date(d.created_at).toLocaleString()}</time>
                </td>
                <td class="actions">
                  {(d.state === "running" || d.state === "stopped") && (
                    <button type="button" onClick={() => setConnecting(d)} aria-label={`Connection details of ${d.name}`}>
                      Connect
                    </button>
                  )}
                  {admin && (d.state === "running" || d.state === "stopped") && (
                    <button type="button" onClick={() => setOwning(d)} aria-label={`Change the owner of ${d.name}`}>
                      Owner
                    </button>
                  )}
                  {writer && restorable(d) && (
                    <button type="button" disabled={busy === d.id} onClick={() => act(d, "restore")} aria-label={`Restore ${d.name}`}>
                      Restore
                    </button>
                  )}
                  {writer && d.state === "running" && (
                      <button type="button" disabled={busy === d.id} onClick={() => act(d, "stop")} aria-label={`Stop ${d.name}`}>
                        Stop
                      </button>
                    )}
                    {writer && d.state === "stopped" && (
                      <button type="button" disabled={busy === d.id} onClick={() => act(d, "start")} aria-label={`Start ${d.name}`}>
                        Start
                      </button>
                    )}
                    {writer && d.state !== "provisioning" && d.state !== "deleted" && (
                      <button type="button" class="danger" onClick={() => setDeleting(d)} aria-label={`Delete ${d.name}`}>
                        Delete
                      </button>
                    )}
                  </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {deleted.length > 0 && (
        <p>
          <button type="button" class="linklike" aria-expanded={showDeleted} onClick={() => setShowDeleted(!showDeleted)}>
            {showDeleted ? "Hide deleted databases" : `Show deleted databases (${deleted.length}) that can still be restored`}
          </button>
        </p>
      )}
      {connecting && <ConnectionDialog db={connecting} onClose={() => setConnecting(null)} />}
      {owning && (
        <OwnerDialog
          db={owning}
          onClose={() => setOwning(null)}
          onChanged={() => {
            setOwning(null);
            load();
          }}
        />
      )}
      {creating && (
        <CreateDatabase
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            load();
          }}
        />
      )}
      {deleting && (
        <DeleteDatabase
          db={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={() => {
            setDeleting(null);
            load();
          }}
        />
      )}
    </section>
  );
}

interface Impact {
  databases: { used: number; after: number; limit: number };
  user_databases: { used: number; after: number; limit: number } | null;
  server: string;
  charset: string;
  collation: string;
}

/** Creating a database in two steps: the form, then what it uses of the quotas (a dry run), then
 * the creation itself. */
function CreateDatabase(props: { onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [template, setTemplate] = useState("sample");
  const [charset, setCharset] = useState("");
  const [impact, setImpact] = useState<Impact | null>(null);
  const { busy, error, run } = useSubmit();
  const body = () => {
    const b: Record<string, string> = { name, template };
    if (charset) b.charset = charset;
    return b;
  };
  const submit = (e: Event) =>
    run(e, async () => {
      if (!impact) {
        setImpact((await api<{ impact: Impact }>("POST", "/databases?dry_run=true", { body: body() })).impact);
      } else {
        await api("POST", "/databases", { body: body() });
        props.onCreated();
      }
    });
  if (impact) {
    const d = impact.databases;
    const u = impact.user_databases;
    return (
      <Dialog title={`Create ${name}?`} onClose={props.onClose}>
        <form onSubmit={submit}>
          <ul class="impact">
            <li>
              The tenant's databases go from {d.used} to {d.after} of {d.limit}.
            </li>
            {u && (
              <li>
                Yours go from {u.used} to {u.after} of {u.limit}.
              </li>
            )}
            <li>
              {template === "sample" ? "Sample template" : "Blank"}, {impact.charset} with collation {impact.collation}.
            </li>
          </ul>
          {error !== null && <Alert>{describeError(error)}</Alert>}
          <div class="buttons">
            <button type="button" onClick={() => setImpact(null)}>
              Back
            </button>
            <button class="primary" type="submit" disabled={busy} autoFocus>
              Create database
            </button>
          </div>
        </form>
      </Dialog>
    );
  }
  return (
    <Dialog title="New database" onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label="Name" hint="Letters, digits and underscores, at most 64." value={name} onInput={setName} pattern="[A-Za-z0-9_]{1,64}" required autoFocus />
        <div class="field">
          <label for="template">Template</label>
          <select id="template" value={template} onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}>
            <option value="sample">Sample: a small shop with customers, products and orders</option>
            <option value="blank">Blank</option>
          </select>
        </div>
        <Field label="Character set (optional)" hint="utf8mb4 when empty." value={charset} onInput={setCharset} />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Continue
          </button>
        </div>
      </form>
    </Dialog>
  );
}

interface Connection {
  host: string;
  port: number;
  database: string;
  username: string;
  account: "read_write" | "read_only";
  password?: string;
}

/** The command line that connects with these details; -p makes the client ask for the password,
 * which then stays out of the shell's history and the process list. */
export function commandLine(c: Connection): string {
  const q = (v: string) => (/^[A-Za-z0-9_.:@%+=-]+$/.test(v) ? v : "'" + v.replace(/'/g, "'\\''") + "'");
  return `mariadb -h ${q(c.host)} -P ${c.port} -u ${q(c.username)} -p ${q(c.database)}`;
}

/** Connection details of the caller's account on a database, with copy buttons, the password
 * revealed on request to who may see it, and rotation. */
export function ConnectionDialog(props: { db: Database; onClose: () => void }) {
  const me = useStore(session)!;
  const [conn, setConn] = useState<Connection | null>(null);
  const [confirmRotate, setConfirmRotate] = useState(false);
  const { busy, error, setError, act } = useSubmit();
  const may = maySeePassword(me, props.db);
  useEffect(() => {
    api<Connection>("GET", `/databases/${props.db.id}/connection`).then(setConn, setError);
  }, [props.db.id]);
  const reveal = () => act(async () => setConn(await api<Connection>("GET", `/databases/${props.db.id}/connection?reveal=password`)));
  const rotate = () =>
    act(async () => {
      setConn((await api<{ connection: Connection }>("POST", `/databases/${props.db.id}/credentials/rotate`)).connection);
      setConfirmRotate(false);
    });
  const rows: [string, string][] = conn
    ? [
        ["Host", conn.host],
        ["Port", String(conn.port)],
        ["Database", conn.database],
        ["User", conn.username],
      ]
    : [];
  return (
    <Dialog title={`Connect to ${props.db.name}`} onClose={props.onClose} wide>
      {conn === null && error === null && <p class="loading">Loading…</p>}
      {conn && (
        <>
          <dl class="kv">
            {rows.map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd>
                  <code>{v}</code> <CopyButton text={v} label={`Copy the ${k.toLowerCase()}`} />
                </dd>
              </div>
            ))}
            <div>
              <dt>Password</dt>
              <dd>
                {conn.password ? (
                  <>
                    <code class="secret">{conn.password}</code> <CopyButton text={conn.password} label="Copy the password" />
                  </>
                ) : may ? (
                  <button type="button" disabled={busy} onClick={reveal}>
                    Reveal password
                  </button>
                ) : (
                  <span class="muted">
                    {conn.account === "read_only"
                      ? "The read-only account's password is not shown: query through the console."
                      : "Shown to the database's owner and the tenant's admins."}
                  </span>
                )}
              </dd>
            </div>
          </dl>
          <p class="field-label" id="cmdline-label">
            Command line
          </p>
          <div class="cmdline">
            <code aria-labelledby="cmdline-label">{commandLine(conn)}</code>
            <CopyButton text={commandLine(conn)} label="Copy the command line" />
          </div>
          <p class="hint">The client asks for the password. {conn.account === "read_only" ? "This is the read-only account of your role." : ""}</p>
        </>
      )}
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {confirmRotate && (
        <Alert kind="info">
          A new password replaces the current one at once: clients connected with it are disconnected and must use the new one.{" "}
          <button type="button" class="danger" disabled={busy} onClick={rotate}>
            Rotate now
          </button>
        </Alert>
      )}
      <div class="buttons">
        {may && conn && !confirmRotate && (
          <button type="button" onClick={() => setConfirmRotate(true)}>
            Rotate password…
          </button>
        )}
        <button type="button" class="primary" onClick={props.onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}

interface Member {
  id: string;
  email: string;
  name: string;
  role: string;
  status: string;
}

/** Gives a database to another member (tenant admins; the API wants the password confirmed). */
function OwnerDialog(props: { db: Database; onClose: () => void; onChanged: () => void }) {
  const [members, setMembers] = useState<Member[] | null>(null);
  const [to, setTo] = useState(props.db.owner_id);
  const { busy, error, setError, run } = useSubmit();
  useEffect(() => {
    api<{ items: Member[] }>("GET", "/users?status=active&limit=500").then((r) => setMembers(r.items), setError);
  }, []);
  return (
    <Dialog title={`Owner of ${props.db.name}`} onClose={props.onClose}>
      <p>The owner's quota counts the database, and the owner may see its password. A previous owner who is not an admin loses that: the password is rotated.</p>
      <form
        onSubmit={(e) =>
          run(e, async () => {
            await withReauth(() => api("PUT", `/databases/${props.db.id}/owner`, { body: { user_id: to } }));
            props.onChanged();
          })
        }
      >
        <div class="field">
          <label for="owner">New owner</label>
          <select id="owner" value={to} onChange={(e) => setTo((e.target as HTMLSelectElement).value)} disabled={!members}>
            {(members ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {m.name ? `${m.name} <${m.email}>` : m.email} ({m.role.replace("_", " ")})
              </option>
            ))}
          </select>
        </div>
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy || !members || to === props.db.owner_id}>
            Change owner
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteDatabase(props: { db: Database; onClose: () => void; onDeleted: () => void }) {
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<unknown>(null);
  return (
    <Dialog title={`Delete ${props.db.name}?`} onClose={props.onClose}>
      <p>
        The database stops at once and can be restored during the recovery window; after that it is gone for good. Type <strong>{props.db.name}</strong> to confirm.
      </p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await api("DELETE", "/databases/" + props.db.id, { body: { confirm_name: typed } });
            props.onDeleted();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Name of the database" value={typed} onInput={setTyped} autoFocus />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button class="danger" type="submit" disabled={typed !== props.db.name}>
            Delete database
          </button>
        </div>
      </form>
    </Dialog>
  );
}
