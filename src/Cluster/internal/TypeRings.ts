/**
 * Heterogeneous silos: which member hosts which actor type, and the hash ring of each type.
 *
 * Every silo publishes, in its membership metadata, its application version
 * (`quark.version`) and the actor types it hosts with their contract versions
 * (`quark.types`: `Cart@1,Ledger@2`, sorted, with `%`, `,` and `@` in a name escaped as
 * `%25`, `%2C` and `%40`, so that any name survives). Types whose name starts with `$` are Quark's own: every silo hosts them,
 * so they are not listed. A member without `quark.types` (a silo of an older Quark) hosts
 * every type, and so does one whose `quark.types` does not parse (with a warning, once per
 * member): bad metadata must not make a type unreachable.
 *
 * A hashed address of type T is owned by the ring of the members that host T. Every silo
 * and client builds these rings from the same membership (ids and metadata), so they agree
 * on every owner, and single activation holds as it does with one ring. They are built once
 * per membership change, never per call: types hosted by the same members share one ring
 * (in a homogeneous cluster every type uses the ring of all members), and a type nobody
 * announced uses the ring of the members that host everything (empty when every member
 * announces its types).
 *
 * For directory placements the rings also say which hosts run the caller's application
 * version (`preferredOf`): during a rolling upgrade a v2 caller places new activations on v2
 * silos when any hosts the type. Hashed owners ignore versions on purpose: one owner that
 * every caller agrees on, whatever its version, is what single activation rests on.
 *
 * @internal
 */
import * as HashRing from "../HashRing.ts"

/** The metadata keys a silo publishes about itself; the `quark.` prefix is reserved. @internal */
export const metadataKeys = {
  /** The silo's application version (`ClusterSiloConfig.version`). */
  version: "quark.version",
  /** The actor types it hosts, with their contract versions (see {@link encodeTypes}). */
  types: "quark.types"
} as const

/** The prefix of metadata keys only Quark may publish. @internal */
export const reservedPrefix = "quark."

/** Whether every silo hosts `type` (Quark's own types: their names start with `$`). @internal */
export const isSystemType = (type: string): boolean => type.startsWith("$")

// Only the three characters the format uses are escaped: any other (a lone surrogate too)
// goes as it is, so that encoding never throws.
const escapes: Readonly<Record<string, string>> = { "%": "%25", ",": "%2C", "@": "%40" }
const unescapes: Readonly<Record<string, string>> = { "%25": "%", "%2C": ",", "%40": "@" }

/** Encodes hosted types as `quark.types` (system types left out, sorted by name). @internal */
export const encodeTypes = (types: Iterable<readonly [type: string, version: number]>): string => {
  const listed: Array<string> = []
  for (const [type, version] of types) {
    if (!isSystemType(type)) listed.push(`${type.replace(/[%,@]/g, (c) => escapes[c]!)}@${version}`)
  }
  return listed.sort().join(",")
}

const contractVersion = /^[1-9][0-9]{0,8}$/
/** A `%` that does not start one of the three escapes. */
const strayPercent = /%(?!25|2C|40)/

/**
 * Decodes `quark.types`: each hosted type with its contract version, or `undefined` when
 * the text does not parse (the member is then taken to host everything). Never throws.
 *
 * @internal
 */
export const decodeTypes = (text: string): ReadonlyMap<string, number> | undefined => {
  const types = new Map<string, number>()
  if (text === "") return types
  for (const part of text.split(",")) {
    const at = part.lastIndexOf("@")
    if (at <= 0 || !contractVersion.test(part.slice(at + 1))) return undefined
    const escaped = part.slice(0, at)
    if (strayPercent.test(escaped)) return undefined
    types.set(escaped.replace(/%(25|2C|40)/g, (e) => unescapes[e]!), Number(part.slice(at + 1)))
  }
  return types
}

/** A member as the rings see it: its id and its published metadata. @internal */
export interface RingMember {
  readonly id: string
  readonly metadata: Readonly<Record<string, string>>
}

/** What one type routes by: the ring of its hosts, and of those running the caller's version. */
interface TypeEntry {
  readonly ring: HashRing.HashRing
  /** The hosts running the caller's application version; `ring` itself when none or all do. */
  readonly preferred: HashRing.HashRing
}

/** A member's hosted types; `undefined` for one that hosts every type. */
type Hosted = ReadonlyMap<string, number> | undefined

/** @internal */
export interface TypeRingsOptions {
  /** The caller's application version: directory placements prefer hosts that run it. Default: `previous`'s. */
  readonly version?: string | undefined
  /** The rings this replaces: their warnings are not repeated. */
  readonly previous?: TypeRings | undefined
}

/**
 * The rings of one membership view, per actor type. Immutable, like a `HashRing`.
 *
 * @internal
 */
export class TypeRings {
  /** The ring of every member: the ring of Quark's own types, and the cluster's members. */
  readonly all: HashRing.HashRing
  /** Identifies the view it was built from (ids and routing metadata): equal views, equal rings. */
  readonly signature: string
  /** Members whose `quark.types` did not parse: each is warned about once, while it is a member. */
  readonly warned: ReadonlySet<string>
  /** Of `warned`, the members first found malformed in this view (the caller logs them). */
  readonly malformed: ReadonlyArray<string>
  readonly #members: ReadonlyArray<RingMember>
  readonly #hasher: HashRing.Hasher
  readonly #options: TypeRingsOptions
  readonly #hosted: ReadonlyMap<string, Hosted>
  readonly #entries: ReadonlyMap<string, TypeEntry>
  /** Types nobody announced: the members that host everything. */
  readonly #unannounced: TypeEntry
  readonly #system: TypeEntry

  private constructor(hasher: HashRing.Hasher, members: ReadonlyArray<RingMember>, options: TypeRingsOptions) {
    this.#hasher = hasher
    this.#members = members
    const previous = options.previous
    const version = options.version ?? (previous === undefined ? undefined : previous.#options.version)
    this.#options = { version }
    this.signature = signatureOf(members)
    const warnedBefore = previous?.warned
    const warned = new Set<string>()
    const malformed: Array<string> = []
    const hosted = new Map<string, Hosted>()
    const types = new Set<string>()
    for (const member of members) {
      const text = member.metadata[metadataKeys.types]
      let decoded: Hosted = undefined
      if (text !== undefined) {
        decoded = decodeTypes(text)
        if (decoded === undefined) {
          warned.add(member.id)
          if (warnedBefore?.has(member.id) !== true) malformed.push(member.id)
        }
      }
      hosted.set(member.id, decoded)
      if (decoded !== undefined) for (const type of decoded.keys()) types.add(type)
    }
    this.warned = warned
    this.malformed = malformed
    this.#hosted = hosted
    // Types with the same hosts share one ring: in a homogeneous cluster there is one.
    const rings = new Map<string, HashRing.HashRing>()
    const ringOf = (ids: ReadonlyArray<string>): HashRing.HashRing => {
      const key = ids.join("\n")
      let ring = rings.get(key)
      if (ring === undefined) rings.set(key, ring = HashRing.makeWith(hasher, ids.map((id) => ({ id }))))
      return ring
    }
    const entryOf = (hosts: ReadonlyArray<RingMember>): TypeEntry => {
      const ring = ringOf(hosts.map((member) => member.id))
      if (version === undefined) return { ring, preferred: ring }
      const same = hosts.filter((member) => member.metadata[metadataKeys.version] === version)
      return { ring, preferred: same.length === 0 || same.length === hosts.length ? ring : ringOf(same.map((m) => m.id)) }
    }
    this.#system = entryOf(members)
    this.all = this.#system.ring
    this.#unannounced = entryOf(members.filter((member) => hosted.get(member.id) === undefined))
    const entries = new Map<string, TypeEntry>()
    for (const type of types) {
      if (isSystemType(type)) continue
      entries.set(type, entryOf(members.filter((member) => hosts(hosted.get(member.id), type))))
    }
    this.#entries = entries
  }

  /** The rings of `members` (ordered by id, as `Membership.members` gives them). */
  static make(hasher: HashRing.Hasher, members: ReadonlyArray<RingMember>, options: TypeRingsOptions = {}): TypeRings {
    return new TypeRings(hasher, members, options)
  }

  /** The ring owning the hashed addresses of `type`: its hosts'. */
  ringOf(type: string): HashRing.HashRing {
    return this.#entryOf(type).ring
  }

  /** The hosts of `type` that run the caller's version, as a ring; `ringOf(type)` when none or all do. */
  preferredOf(type: string): HashRing.HashRing {
    return this.#entryOf(type).preferred
  }

  /** Whether member `id` hosts `type` in this view (false for a member not in it). */
  hosts(id: string, type: string): boolean {
    return this.#hosted.has(id) && hosts(this.#hosted.get(id), type)
  }

  /** The same view without member `id`. */
  without(id: string): TypeRings {
    if (!this.#hosted.has(id)) return this
    return new TypeRings(this.#hasher, this.#members.filter((member) => member.id !== id), { ...this.#options, previous: this })
  }

  /**
   * The view with the members of `ring` (a silo that drops itself from its ring, say): the
   * members it keeps keep their metadata; one it adds hosts every type.
   */
  matching(ring: HashRing.HashRing): TypeRings {
    if (ring.members.length === this.#members.length && this.#members.every((member) => ring.has(member.id))) return this
    const known = new Map(this.#members.map((member) => [member.id, member]))
    const members = ring.members.map((node) => known.get(node.id) ?? { id: node.id, metadata: {} })
    return new TypeRings(this.#hasher, members, { ...this.#options, previous: this })
  }

  #entryOf(type: string): TypeEntry {
    return isSystemType(type) ? this.#system : this.#entries.get(type) ?? this.#unannounced
  }
}

const hosts = (hosted: Hosted, type: string): boolean => hosted === undefined || isSystemType(type) || hosted.has(type)

/** The ids and routing metadata of a view, as one string: what decides the rings. @internal */
export const signatureOf = (members: ReadonlyArray<RingMember>): string => {
  let signature = ""
  for (const member of members) {
    signature += `${member.id}\u0000${member.metadata[metadataKeys.types] ?? "\u0001"}\u0000${
      member.metadata[metadataKeys.version] ?? "\u0001"
    }\n`
  }
  return signature
}
