// The tenant's databases: list with state and usage, create, stop and start, delete by typing the
// name. Provisioning is followed until the database is ready.
import { useEffect, useState } from "preact/hooks";
import { api, describeError } from "../api";
import { can, session, useStore } from "../store";
import { Alert, Dialog, Field, formatBytes, Link, useTitle } from "../ui";

export interface Database {
  id: string;
  name: string;
  state: "provisioning" | "running" | "stopped" | "deleted" | "failed";
  charset: string;
  collation: string;
  created_at: string;
  storage_bytes: number;
  failure_reason?: string;
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
  const [busy, setBusy] = useState<string | null>(null);
  useTitle("Databases");

  const load = () =>
    api<{ items: Database[] }>("GET", "/databases").then(
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

  const act = async (d: Database, action: "start" | "stop") => {
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
      ) : items.length === 0 ? (
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
              {writer && (
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id}>
                <td>
                  {d.state === "running" || d.state === "stopped" ? <Link href={"/databases/" + d.id}>{d.name}</Link> : d.name}
                  {d.failure_reason && <div class="hint">{d.failure_reason}</div>}
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
                {writer && (
                  <td class="actions">
                    {d.state === "running" && (
                      <button type="button" disabled={busy === d.id} onClick={() => act(d, "stop")} aria-label={`Stop ${d.name}`}>
                        Stop
                      </button>
                    )}
                    {d.state === "stopped" && (
                      <button type="button" disabled={busy === d.id} onClick={() => act(d, "start")} aria-label={`Start ${d.name}`}>
                        Start
                      </button>
                    )}
                    {d.state !== "provisioning" && (
                      <button type="button" class="danger" onClick={() => setDeleting(d)} aria-label={`Delete ${d.name}`}>
                        Delete
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
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

function CreateDatabase(props: { onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [template, setTemplate] = useState("sample");
  const [charset, setCharset] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title="New database" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const body: Record<string, string> = { name, template };
            if (charset) body.charset = charset;
            await api("POST", "/databases", { body });
            props.onCreated();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
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
            Create
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
