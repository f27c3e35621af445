// The introduction after the first verification (/welcome): a tenant, a first database from the
// sample template, a first query that returns rows. Every step can be skipped; a step whose
// outcome the next one needs ends the introduction when skipped.
import { useEffect, useState } from "preact/hooks";
import { api, describeError } from "../api";
import { Result, ResultView } from "../results";
import { navigate, query, route, session, useStore } from "../store";
import { Alert, Field, Link, useSubmit, useTitle } from "../ui";
import { Database } from "./databases";
import { CreateTenant } from "./tenants";

const firstQuery = "SELECT name, price, stock FROM products ORDER BY price DESC LIMIT 10";
const titles = ["Create your tenant", "Create a first database", "Run a first query"];

export function Welcome() {
  const me = useStore(session)!;
  const here = useStore(route);
  const [dbs, setDbs] = useState<Database[] | null>(null);
  useEffect(() => {
    if (me.tenant) api<{ items: Database[] }>("GET", "/databases").then((r) => setDbs(r.items), () => setDbs([]));
  }, [me.tenant?.id, here]);
  const running = dbs?.find((d) => d.id === query("db")) ?? dbs?.find((d) => d.state === "running");
  const step = !me.tenant ? 1 : query("step") === "3" || (!query("step") && running) ? 3 : 2;
  useTitle("Welcome");
  const done = () => navigate("/databases");
  if (me.tenant && dbs === null) return <p class="loading">Loading…</p>;
  return (
    <section class="welcome">
      <h1>Welcome to CloudDB Manager</h1>
      <ol class="steps" aria-label="Steps of the introduction">
        {titles.map((t, i) => (
          <li key={t} aria-current={step === i + 1 ? "step" : undefined} class={step > i + 1 ? "done" : undefined}>
            <span class="step-no" aria-hidden="true">
              {step > i + 1 ? "✓" : i + 1}
            </span>{" "}
            {t}
          </li>
        ))}
      </ol>
      <div class="panel-card">
        {step === 1 && <CreateTenant next="/welcome" embedded />}
        {step === 2 && <FirstDatabase onCreated={(id) => navigate(`/welcome?step=3&db=${id}`)} />}
        {step === 3 && running && <FirstQuery db={running} />}
        {step === 3 && !running && <p>There is no running database to query yet.</p>}
      </div>
      <div class="buttons start">
        {step === 2 && running ? (
          <button type="button" onClick={() => navigate(`/welcome?step=3&db=${running.id}`)}>
            Skip this step
          </button>
        ) : (
          step < 3 && (
            <button type="button" onClick={done}>
              Skip the introduction
            </button>
          )
        )}
        {step === 3 && (
          <button type="button" class="primary" onClick={done}>
            Finish
          </button>
        )}
      </div>
    </section>
  );
}

function FirstDatabase(props: { onCreated: (id: string) => void }) {
  const [name, setName] = useState("shop");
  const [state, setState] = useState<"" | "creating" | "provisioning">("");
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        setState("creating");
        try {
          let d = await api<Database>("POST", "/databases", { body: { name, template: "sample" } });
          // Provisioning beyond the API's wait: look again until it runs or fails.
          while (d.state === "provisioning") {
            setState("provisioning");
            await new Promise((r) => setTimeout(r, 1000));
            d = await api<Database>("GET", "/databases/" + d.id);
          }
          if (d.state !== "running") throw new Error(d.failure_reason ?? `The database is ${d.state}.`);
          props.onCreated(d.id);
        } catch (err) {
          setError(err);
          setState("");
        }
      }}
    >
      <h2>Create a first database</h2>
      <p>The sample template comes with a small shop: customers, products and orders, ready to query.</p>
      <Field label="Database name" hint="Letters, digits and underscores." value={name} onInput={setName} pattern="[A-Za-z0-9_]{1,64}" required autoFocus />
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {state === "provisioning" && <Alert kind="info">Preparing the database…</Alert>}
      <button class="primary" type="submit" disabled={state !== ""}>
        {state ? "Creating…" : "Create it from the sample template"}
      </button>
    </form>
  );
}

function FirstQuery(props: { db: Database }) {
  const [result, setResult] = useState<Result | null>(null);
  const { busy, error, act } = useSubmit();
  return (
    <div>
      <h2>Run a first query on {props.db.name}</h2>
      <p>This asks the sample's products for the ten most expensive:</p>
      <pre class="sql">{firstQuery}</pre>
      <button
        class="primary"
        type="button"
        disabled={busy}
        autoFocus
        onClick={() => act(async () => setResult(await api<Result>("POST", `/databases/${props.db.id}/query`, { body: { sql: firstQuery } })))}
      >
        Run this query
      </button>
      {error !== null && <Alert>{describeError(error)}</Alert>}
      {result && (
        <div class="welcome-result">
          <ResultView result={result} />
          <p>
            That is all it takes. The <Link href={"/databases/" + props.db.id}>SQL editor</Link> completes table and column names, checks statements as you type and keeps your drafts.
          </p>
        </div>
      )}
    </div>
  );
}
