import { useEffect, useState } from "preact/hooks";

/** A value that components can watch: the smallest store that serves this console. */
export interface Store<T> {
  get(): T;
  set(v: T): void;
  subscribe(f: () => void): () => void;
}

export function store<T>(initial: T): Store<T> {
  let value = initial;
  const subs = new Set<() => void>();
  return {
    get: () => value,
    set(v) {
      value = v;
      subs.forEach((f) => f());
    },
    subscribe(f) {
      subs.add(f);
      return () => subs.delete(f);
    },
  };
}

export function useStore<T>(s: Store<T>): T {
  const [, force] = useState(0);
  useEffect(() => s.subscribe(() => force((n) => n + 1)), [s]);
  return s.get();
}

export interface Me {
  user: { id: string; email: string; name: string; status: string; totp_enabled: boolean };
  tenant: { id: string; slug: string; name: string; role: "viewer" | "developer" | "tenant_admin" } | null;
  permissions: string[];
  session?: { id: string };
}

/** Who is signed in: undefined while the first refresh is under way, null when nobody. */
export const session = store<Me | null | undefined>(undefined);

export function can(me: Me | null | undefined, permission: string): boolean {
  return !!me && me.permissions.includes(permission);
}

/** The client-side route: path and query of the location. */
export const route = store(location.pathname + location.search);

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  route.set(to);
  window.scrollTo(0, 0);
}

addEventListener("popstate", () => route.set(location.pathname + location.search));

export function query(name: string): string {
  return new URLSearchParams(route.get().split("?")[1] ?? "").get(name) ?? "";
}

export interface TenantChoice {
  id: string;
  slug: string;
  name: string;
  role: "viewer" | "developer" | "tenant_admin";
}
