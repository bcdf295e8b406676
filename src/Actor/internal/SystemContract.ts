/**
 * The key that lets Quark's own contracts (the reminder buckets, say) take a type name
 * starting with "$", which `Actor.make` refuses to users: those names can never collide with
 * an application's types.
 *
 * @internal
 */
export const systemContract: unique symbol = Symbol.for("quark/Actor/systemContract")
