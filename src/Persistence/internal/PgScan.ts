/**
 * The re-encryption scan of the PostgreSQL store (`StoreScan.ts`): keyset pagination over
 * each table's primary key, 500 keys a page (the cursor is the last key, as JSON), and the
 * two compare-and-set replacements as one `UPDATE ... WHERE data = expected` each.
 *
 * @internal
 */
import { Effect } from "effect"
import type { StoreError } from "../PersistenceError.ts"
import type { StateKey } from "../StateStore.ts"
import { type JournalScan, type KeyPage, type StateScan, withScan } from "./StoreScan.ts"

/** How the store runs one statement (`PgConnection.run`). @internal */
export type Run = <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, StoreError>

const pageSize = 500

/** The scans of the PostgreSQL store whose tables are `{prefix}state`, ... @internal */
export const pgScan = (run: Run, prefix: string): StateScan & JournalScan => {
  const page = (table: string, name: string, distinct: boolean) => {
    // Row comparison and ORDER BY use the same collation, so the pages neither skip nor repeat.
    const text = `SELECT ${distinct ? "DISTINCT " : ""}actor_type, actor_id, ${name} AS record FROM ${prefix}${table}
      WHERE $1::boolean OR (actor_type, actor_id, ${name}) > ($2, $3, $4)
      ORDER BY actor_type, actor_id, ${name} LIMIT ${pageSize}`
    return (cursor: string | undefined): Effect.Effect<KeyPage, StoreError> => {
      const after = cursor === undefined ? ["", "", ""] : JSON.parse(cursor) as [string, string, string]
      return Effect.map(
        run<{ actor_type: string; actor_id: string; record: string }>("scan", text, [cursor === undefined, ...after]),
        (rows) => {
          const keys = rows.map((row): StateKey => ({ type: row.actor_type, id: row.actor_id, record: row.record }))
          const last = keys.at(-1)
          return {
            keys,
            cursor: rows.length < pageSize || last === undefined ? undefined : JSON.stringify([last.type, last.id, last.record])
          }
        }
      )
    }
  }
  const where = "actor_type = $1 AND actor_id = $2 AND journal = $3 AND sequence = $4 AND data = $5"
  // A compare-and-set on the row's data: false when it changed meanwhile.
  const replace = (table: "journal" | "snapshot", key: StateKey, sequence: number, expected: string, data: string) =>
    Effect.map(
      run(`replace ${table === "journal" ? "event" : "snapshot"}`, `UPDATE ${prefix}${table} SET data = $6 WHERE ${where} RETURNING 1`, [
        key.type,
        key.id,
        key.record,
        sequence,
        expected,
        data
      ]),
      (rows) => rows.length === 1
    )
  return {
    stateKeys: page("state", "record", false),
    journalKeys: page("journal", "journal", true),
    snapshotKeys: page("snapshot", "journal", false),
    replaceEvent: (key, sequence, expected, data) => replace("journal", key, sequence, expected, data),
    replaceSnapshot: (key, sequence, expected, data) => replace("snapshot", key, sequence, expected, data)
  }
}

/** `store` with the scans of {@link pgScan} registered. @internal */
export const withPgScan = <S extends { readonly state: object; readonly journal: object }>(store: S, run: Run, prefix: string): S =>
  withScan(store, pgScan(run, prefix))
