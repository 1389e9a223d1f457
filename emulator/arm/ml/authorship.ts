/** Who created and last changed each datastore, for its systemData. */
import type { Datastore } from "../../model";

export interface Authorship {
  createdBy: string;
  createdByType: string;
  lastModifiedBy: string;
  lastModifiedByType: string;
}

export const SEEDED: Authorship = {
  createdBy: "keyturn-emulator",
  createdByType: "Application",
  lastModifiedBy: "keyturn-emulator",
  lastModifiedByType: "Application",
};

/** Who created and last changed each datastore (seeded ones: the emulator). */
const authorship = new WeakMap<Datastore, Authorship>();

/**
 * Records a change to a datastore: systemData.lastModifiedAt moves on every change, even two in one
 * millisecond (keyturn compares it to find datastores changed during a grace without reading their
 * secrets), and lastModifiedBy names who made it.
 */
export function recordChange(
  ds: Datastore,
  existing: boolean,
  at: Date,
  who: { by: string; type: string },
): void {
  ds.lastModifiedAt = existing ? new Date(Math.max(at.getTime(), ds.lastModifiedAt.getTime() + 1)) : at;
  const prior = authorship.get(ds) ?? (existing ? SEEDED : undefined);
  authorship.set(ds, {
    createdBy: prior?.createdBy ?? who.by,
    createdByType: prior?.createdByType ?? who.type,
    lastModifiedBy: who.by,
    lastModifiedByType: who.type,
  });
}

/** Who created and last changed a datastore; undefined for one seeded and never changed. */
export function authorshipOf(ds: Datastore): Authorship | undefined {
  return authorship.get(ds);
}
