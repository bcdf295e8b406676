import { Effect } from "effect"
import { Stores } from "../../src/index.ts"
import { conformance } from "./conformance.ts"

conformance("memory", Effect.sync(() => Stores.memory("memory")))
