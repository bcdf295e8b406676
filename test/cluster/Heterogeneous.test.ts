/**
 * Version-aware and heterogeneous silos, in-process (TestCluster: memory membership on the
 * TestClock, real TCP on 127.0.0.1). Each silo announces its application version and the
 * actor types it hosts; every placement chooses among the hosts of the address's type, and
 * directory placements prefer the hosts that run the caller's version. The rings per type
 * are also checked as a property: whatever the membership and what each member hosts,
 * every silo and client computes the same owner, and the owner hosts the type.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Schema } from "effect"
import { Rpc } from "effect/rpc"
import * as fc from "fast-check"
import { Actor, ActorContext, NoHostForType, Silo } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as ClusterSilo from "../../src/Cluster/ClusterSilo.ts"
import * as HashRing from "../../src/Cluster/HashRing.ts"
import * as MemoryMembership from "../../src/Cluster/MemoryMembership.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { decodeTypes, encodeTypes, metadataKeys, type RingMember, TypeRings } from "../../src/Cluster/internal/TypeRings.ts"
import type { MessageEntry } from "../../src/Actor/internal/HostedType.ts"
import { decodeFailure } from "../../src/Cluster/internal/MessageCodec.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import { eventually } from "../fixtures/Eventually.ts"

const Where = Rpc.make("Where", { success: Schema.String })
const X = Actor.make("HetX", [Where])
const Y = Actor.make("HetY", [Where], { version: 3 })
const Z = Actor.make("HetZ", [Where])
const Roam = Actor.make("HetRoam", [Where], { placement: Placement.random })
const Local = Actor.make("HetLocal", [Where], { placement: Placement.preferLocal })

type WhereContract = Actor.Actor<string, typeof Where>

/** Answers the id of the silo it runs on. */
const whereLayer = (contract: WhereContract) =>
  contract.toLayer(Effect.gen(function*() {
    const self = (yield* Cluster).self!.id
    return contract.of({ Where: () => Effect.succeed(self) })
  }))

const where = (contract: WhereContract, id: string) => Effect.flatMap(contract.ref(id), (ref) => ref.Where())

const ownerOf = (member: TestCluster.TestMember, type: string, id: string) =>
  member.run(Effect.flatMap(Cluster, (cluster) => cluster.ownerOf({ type, id })))

const hosted = (member: TestCluster.TestMember, type: string) =>
  member.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations(type)), (rows) => rows.map((row) => row.address.id)))

const ids = Array.from({ length: 30 }, (_, i) => `h-${i}`)

describe("heterogeneous silos", () => {
  it.effect("A and B host X, C hosts only Y: X calls never reach C, Y calls all do, and every member computes the same owners", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: whereLayer(X) })
      const c = yield* cluster.addSiloWith({ implementations: whereLayer(Y) })
      const client = yield* cluster.addClient
      yield* cluster.settle
      const [a, b] = cluster.silos
      const members = [a!, b!, c, client]

      // What each silo announces, as every member's view shows it.
      const view = yield* client.run(Effect.flatMap(Cluster, (cluster) => cluster.view))
      const metadataOf = (id: string) => view.find((member) => member.identity.id === id)!.metadata
      assert.deepStrictEqual([...Placement.hostedTypes(metadataOf(c.id))!], [["HetY", 3]])
      assert.deepStrictEqual([...Placement.hostedTypes(metadataOf(a!.id))!], [["HetX", 1]])
      assert.strictEqual(metadataOf(a!.id)[Placement.metadataKeys.version], "0", "the default version")

      const xOwners = new Set<string>()
      for (const [i, id] of ids.entries()) {
        const caller = members[i % members.length]!
        const servedX = yield* caller.run(where(X, id))
        xOwners.add(servedX)
        assert.include([a!.id, b!.id], servedX, `X/${id} from ${caller.id}`)
        assert.strictEqual(yield* caller.run(where(Y, id)), c.id, `Y/${id} from ${caller.id}`)
        for (const member of members) {
          assert.strictEqual(yield* ownerOf(member, "HetX", id), servedX, `X/${id}'s owner as ${member.id} sees it`)
          assert.strictEqual(yield* ownerOf(member, "HetY", id), c.id)
        }
      }
      assert.strictEqual(xOwners.size, 2, "X spreads over both of its hosts")
      assert.deepStrictEqual(yield* hosted(c, "HetX"), [], "C never activated X")
      assert.deepStrictEqual([...(yield* hosted(a!, "HetY")), ...(yield* hosted(b!, "HetY"))], [])
    }).pipe(Effect.scoped))

  it.effect("a call to a type no live silo hosts fails at once with NoHostForType, and succeeds once a host joins", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: whereLayer(X) })
      const client = yield* cluster.addClient
      const [a] = cluster.silos
      // Under the TestClock no time passes: a call that waited for a timeout would never end.
      for (const member of [a!, client]) {
        const asked = yield* member.run(Effect.flip(where(Z, "z-1")))
        assert.instanceOf(asked, NoHostForType, `an ask from ${member.id}`)
        assert.deepStrictEqual({ ...asked.address }, { type: "HetZ", id: "z-1" })
        assert.match(asked.message, /safe to retry once a silo hosting it joins/)
        const told = yield* member.run(Effect.flip(Effect.flatMap(Z.ref("z-1"), (ref) => ref.tell.Where())))
        assert.instanceOf(told, NoHostForType, `a tell from ${member.id}`)
      }
      const z = yield* cluster.addSiloWith({ implementations: whereLayer(Z) })
      yield* cluster.settle
      assert.strictEqual(yield* client.run(where(Z, "z-1")), z.id)
      assert.strictEqual(yield* a!.run(where(Z, "z-1")), z.id)
      // Its only host leaves: no host again.
      yield* z.stop
      yield* cluster.settle
      assert.instanceOf(yield* client.run(Effect.flip(where(Z, "z-1"))), NoHostForType)
    }).pipe(Effect.scoped))

  it.effect("a call that reaches a silo not hosting its type (the caller's view is behind) is forwarded to a host; with none, NoHostForType crosses the wire", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: whereLayer(X) })
      const c = yield* cluster.addSiloWith({ implementations: whereLayer(Y) })
      yield* cluster.settle
      const [a, b] = cluster.silos
      // A raw connection to C plays a caller whose view still has C hosting X.
      const address = SiloIdentity.parseId(c.id)!.address
      const connection = yield* Connection.make({
        host: address.slice(0, address.lastIndexOf(":")),
        port: Number(address.slice(address.lastIndexOf(":") + 1))
      })
      const ask = (type: string, id: string) =>
        connection.call({ target: { type, id }, tag: "Where", payload: new Uint8Array(0), context: { correlationId: "", metadata: {} }, chain: [] })
      for (const id of ids.slice(0, 6)) {
        const reply = yield* ask("HetX", id)
        assert.strictEqual(reply._tag, "Success", `X/${id}`)
        const servedBy = reply._tag === "Success" ? JSON.parse(new TextDecoder().decode(reply.value)) : undefined
        assert.strictEqual(servedBy, yield* ownerOf(c, "HetX", id), `X/${id} answered by its owner`)
        assert.include([a!.id, b!.id], servedBy)
      }
      const nobody = yield* ask("HetZ", "z-1")
      assert.strictEqual(nobody._tag, "Failure")
      if (nobody._tag === "Failure") assert.instanceOf(decodeFailure({} as MessageEntry, nobody.error), NoHostForType)
    }).pipe(Effect.scoped))

  it.effect("directory placements choose among the hosts, preferring those that run the caller's version; hashed owners ignore versions", () =>
    Effect.gen(function*() {
      const directoryPlaced = Layer.mergeAll(whereLayer(Roam), whereLayer(Local))
      const cluster = yield* TestCluster.make({ silos: 0, implementations: directoryPlaced })
      const v1 = yield* cluster.addSiloWith({ config: { version: "1" } })
      const v2a = yield* cluster.addSiloWith({ config: { version: "2" } })
      const v2b = yield* cluster.addSiloWith({ config: { version: "2" } })
      // Callers that host neither directory-placed type (they host X, hashed).
      const otherV2 = yield* cluster.addSiloWith({ implementations: whereLayer(X), config: { version: "2" } })
      const otherV1 = yield* cluster.addSiloWith({ implementations: whereLayer(X), config: { version: "1" } })
      const clientV1 = yield* cluster.addClientWith({ version: "1" })
      const clientV2 = yield* cluster.addClientWith({ version: "2" })
      const clientV9 = yield* cluster.addClientWith({ version: "9" })
      yield* cluster.settle
      const hosts = [v1.id, v2a.id, v2b.id]
      const placedFrom = (caller: TestCluster.TestMember, contract: WhereContract, prefix: string) =>
        Effect.forEach(ids, (id) => caller.run(where(contract, `${prefix}-${id}`)))

      for (const [name, caller, want] of [
        ["a v2 client", clientV2, [v2a.id, v2b.id]],
        ["a v2 silo", otherV2, [v2a.id, v2b.id]],
        ["a v1 client", clientV1, [v1.id]],
        ["a v1 silo", otherV1, [v1.id]]
      ] as const) {
        for (const placed of yield* placedFrom(caller, Roam, `roam-${name}`)) assert.include(want, placed, `Roam from ${name}`)
        for (const placed of yield* placedFrom(caller, Local, `local-${name}`)) assert.include(want, placed, `Local from ${name}`)
      }
      // No host runs the caller's version: any host will do.
      const anywhere = new Set(yield* placedFrom(clientV9, Roam, "roam-v9"))
      assert.isAtLeast(anywhere.size, 2)
      for (const placed of anywhere) assert.include(hosts, placed)
      // A host places a preferLocal actor on itself, whatever the caller's version would prefer.
      for (const placed of yield* placedFrom(v1, Local, "local-self")) assert.strictEqual(placed, v1.id)
      // A placed actor stays where it is, whoever calls it next.
      const first = yield* clientV1.run(where(Roam, "sticky"))
      assert.strictEqual(yield* clientV2.run(where(Roam, "sticky")), first)

      // Hashed: one owner for every caller, whatever its version (X is hosted by a v1 and a v2 silo).
      const xOwners = new Set<string>()
      for (const id of ids) {
        const owner = yield* clientV1.run(where(X, id))
        xOwners.add(owner)
        assert.strictEqual(yield* clientV2.run(where(X, id)), owner)
        assert.strictEqual(yield* otherV2.run(where(X, id)), owner)
      }
      assert.deepStrictEqual([...xOwners].sort(), [otherV1.id, otherV2.id].sort())
    }).pipe(Effect.scoped))

  it.effect("a silo with unreadable quark.types is taken to host every type, with one warning", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const capture = Logger.layer([
        Logger.make(({ logLevel, message }) => {
          const text = Array.isArray(message) ? message.join(" ") : String(message)
          if (logLevel === "Warn" && text.includes("quark.types")) warnings.push(text)
        })
      ])
      yield* Effect.gen(function*() {
        const cluster = yield* TestCluster.make({ silos: 1, implementations: whereLayer(X) })
        const [a] = cluster.silos
        // A member that announces garbage (an older or broken silo; nothing listens there).
        const join = (port: number, types: string) =>
          Effect.gen(function*() {
            const membership = yield* MemoryMembership.make(cluster.registry)
            const identity = yield* SiloIdentity.generate("127.0.0.1", port)
            yield* membership.join(identity, { metadata: { [metadataKeys.types]: types } })
            return identity.id
          })
        const odd = yield* join(1, "%E0%A4%A@1,@@")
        yield* eventually(Effect.map(a!.run(Effect.flatMap(Cluster, (c) => c.members)), (m) => m.includes(odd)), "a sees it")
        const owners = new Set<string | undefined>()
        for (const id of ids) owners.add(yield* ownerOf(a!, "HetX", id))
        assert.isTrue(owners.has(odd), "it owns X addresses: it hosts every type")
        assert.strictEqual(warnings.length, 1)
        // Another change of the view: no second warning about the same member.
        const empty = yield* join(2, "")
        yield* eventually(Effect.map(a!.run(Effect.flatMap(Cluster, (c) => c.members)), (m) => m.includes(empty)), "a sees it")
        for (const id of ids) assert.notStrictEqual(yield* ownerOf(a!, "HetX", id), empty, "a member announcing no type owns none")
        assert.strictEqual(warnings.length, 1)
      }).pipe(Effect.provide(capture))
    }).pipe(Effect.scoped))

  it.effect("user metadata may not use the reserved quark. prefix: the silo fails to start with a typed error", () =>
    Effect.gen(function*() {
      const registry = MemoryMembership.makeRegistry()
      const silo = (metadata: Record<string, string>) =>
        ClusterSilo.layer({ metadata }).pipe(Layer.provide(MemoryMembership.layer(registry)))
      const error = yield* Effect.flip(Layer.build(silo({ zone: "a", "quark.version": "9" })))
      assert.strictEqual(error._tag, "MembershipError")
      assert.strictEqual((error as { operation?: string }).operation, "configure")
      assert.include(error.message, "quark.version")
      assert.deepStrictEqual(yield* registry.ids, [], "it never joined")
      const started = yield* Layer.build(silo({ zone: "a" }))
      const self = Effect.runSync(Effect.provideContext(Effect.map(Cluster, (c) => c.self!.id), started))
      const [member] = yield* Effect.provideContext(Effect.flatMap(Cluster, (c) => c.view), started)
      assert.strictEqual(member!.identity.id, self)
      assert.strictEqual(member!.metadata.zone, "a")
    }).pipe(Effect.scoped))

  it("a contract's version is a positive integer", () => {
    assert.strictEqual(X.version, 1)
    assert.strictEqual(Y.version, 3)
    for (const version of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => Actor.make("HetBad", [Where], { version }), /positive integer/)
    }
  })
})

describe("a type's previous owner during a handoff", () => {
  /** Held's deactivations wait for `gate`; its starts and ends go to `log`. */
  const Held = Actor.make("HetHeld", [Where])
  const log: Array<{ readonly id: string; readonly silo: string; readonly kind: "start" | "end" }> = []
  let gate = Deferred.makeUnsafe<void>()
  const heldLayer = Held.toLayer(Effect.gen(function*() {
    const id = (yield* ActorContext).address.id
    const silo = (yield* Cluster).self!.id
    log.push({ id, silo, kind: "start" })
    yield* Effect.addFinalizer(() => Effect.andThen(Deferred.await(gate), Effect.sync(() => void log.push({ id, silo, kind: "end" }))))
    return Held.of({ Where: () => Effect.succeed(silo) })
  }))

  it.effect("is the one on the type's ring: a new host waits for the silo that held the address, not for one that never hosted it", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      // A hosts Held; B hosts only X. On the ring of all members B would own about half of
      // Held's addresses, and a new host asking B to release them would not wait for A.
      const cluster = yield* TestCluster.make({ silos: 1, implementations: Layer.merge(heldLayer, whereLayer(X)) })
      const [a] = cluster.silos
      yield* cluster.addSiloWith({ implementations: whereLayer(X) })
      const client = yield* cluster.addClient
      yield* cluster.settle
      for (const id of ids) assert.strictEqual(yield* client.run(where(Held, id)), a!.id)
      const d = yield* cluster.addSiloWith({ implementations: heldLayer })
      yield* cluster.settle
      const moved: Array<string> = []
      for (const id of ids) if ((yield* ownerOf(client, "HetHeld", id)) === d.id) moved.push(id)
      assert.isAbove(moved.length, 0)
      // A's deactivations of the moved addresses are held at the gate: D must wait for them.
      const calls = yield* Effect.forkChild(client.run(Effect.forEach(moved, (id) => where(Held, id), { concurrency: "unbounded" })))
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      assert.deepStrictEqual(yield* hosted(d, "HetHeld"), [], "D activates nothing while A still holds the addresses")
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(calls), moved.map(() => d.id))
      for (const id of moved) {
        const endOnA = log.findIndex((event) => event.id === id && event.silo === a!.id && event.kind === "end")
        const startOnD = log.findIndex((event) => event.id === id && event.silo === d.id && event.kind === "start")
        assert.isAbove(endOnA, -1, `${id} ended on A`)
        assert.isAbove(startOnD, endOnA, `${id}: started on D after it ended on A`)
      }
    }).pipe(Effect.scoped))
})

// ---------------------------------------------------------------------------------------
// The rings per type, as a property
// ---------------------------------------------------------------------------------------

const types = ["A", "B", "C", "D"]
/** What a member announces: nothing (hosts all), a list, or garbage (taken as hosting all). */
const announcement = fc.oneof(
  fc.constant(undefined),
  fc.subarray(types).map((hosted) => encodeTypes(hosted.map((type) => [type, 1] as const))),
  fc.constantFrom("@@", "A@0", "%zz@1", "A@1,", "A@x")
)
const membership = fc.uniqueArray(
  fc.record({
    port: fc.integer({ min: 1, max: 60_000 }),
    types: announcement,
    version: fc.constantFrom(undefined, "1", "2")
  }),
  { minLength: 0, maxLength: 7, selector: (member) => member.port }
)
const address = fc.record({ type: fc.constantFrom(...types, "E", "$system"), id: fc.string({ minLength: 1, maxLength: 12 }) })

const hostsType = (member: RingMember, type: string) => {
  const hosted = Placement.hostedTypes(member.metadata)
  return type.startsWith("$") || hosted === undefined || hosted.has(type)
}

describe("the rings per type (property)", () => {
  it.effect("every silo and client computes the same owner of every address, and the owner hosts its type", () =>
    Effect.gen(function*() {
      const hasher = yield* HashRing.xxhash32
      fc.assert(
        fc.property(membership, fc.array(address, { minLength: 1, maxLength: 20 }), fc.integer(), (spec, addresses, seed) => {
          const members: Array<RingMember> = spec.map(({ port, types, version }) => ({
            id: `10.0.0.1:${port}@1`,
            metadata: {
              ...(types === undefined ? {} : { [metadataKeys.types]: types }),
              ...(version === undefined ? {} : { [metadataKeys.version]: version })
            }
          }))
          // Each silo and a client read the same membership, each in its own order and with its own version.
          const views = [...members.map((member) => member.id), "client"].map((_, i) => {
            const order = [...members].sort((x, y) => ((hasher(`${seed}/${i}/${x.id}`) - hasher(`${seed}/${i}/${y.id}`))))
            return TypeRings.make(hasher, order, { version: ["1", "2", undefined][i % 3] })
          })
          for (const { id, type } of addresses) {
            const key = `${type}/${id}`
            const owners = views.map((rings) => rings.ringOf(type).owner(key))
            assert.isTrue(owners.every((owner) => owner === owners[0]), `${key}: ${owners.join()}`)
            const owner = owners[0]
            const hosts = members.filter((member) => hostsType(member, type))
            if (owner === undefined) {
              assert.deepStrictEqual(hosts, [], `${key} has hosts but no owner`)
            } else {
              assert.isTrue(hostsType(members.find((member) => member.id === owner)!, type), `${key}'s owner hosts it`)
            }
            for (const [i, rings] of views.entries()) {
              // The version-preferring ring of a directory placement: hosts only, of the caller's version if any.
              const version = ["1", "2", undefined][i % 3]
              const preferred = rings.preferredOf(type).members.map((node) => node.id)
              const same = hosts.filter((member) => member.metadata[metadataKeys.version] === version)
              const want = version === undefined || same.length === 0 ? hosts : same
              assert.deepStrictEqual(preferred, want.map((member) => member.id).sort())
            }
          }
        }),
        { numRuns: 300 }
      )
    }))

  it("quark.types survives any type name, and what does not parse is undefined, never a throw", () => {
    fc.assert(
      // Any name: "binary" strings include `%`, `,`, `@` and lone surrogates.
      fc.property(fc.uniqueArray(fc.string({ unit: "binary", minLength: 1, maxLength: 12 }).filter((type) => !type.startsWith("$"))), fc.nat(1000), (names, base) => {
        const entries = names.map((type, i) => [type, base + i + 1] as const)
        assert.deepStrictEqual(decodeTypes(encodeTypes(entries)), new Map(entries))
      })
    )
    fc.assert(fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.stringMatching(/^[A%@,0-9]{0,12}$/)), (text) => {
      const decoded = decodeTypes(text)
      if (decoded !== undefined) for (const version of decoded.values()) assert.isTrue(Number.isSafeInteger(version) && version >= 1)
    }))
    assert.strictEqual(encodeTypes([["$reminders", 1], ["B", 2], ["A", 1]]), "A@1,B@2", "system types are not listed; sorted")
    for (const bad of ["@@", "A@0", "A@01", "%zz@1", "A@1,", ",", "A", "A@1.5"]) assert.isUndefined(decodeTypes(bad), bad)
  })
})
