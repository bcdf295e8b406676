/**
 * The FIFO of turns waiting for an activation. A plain array with a moving head: `shift`
 * on a long array is linear in V8, and a mailbox under load holds thousands of entries.
 * Capacity is enforced by the caller (the activation), which knows the overflow policy.
 *
 * @internal
 */
import type { Turn } from "./Turn.ts"

/** @internal */
export class Mailbox {
  private items: Array<Turn | undefined> = []
  private head = 0

  get size(): number {
    return this.items.length - this.head
  }

  push(turn: Turn): void {
    this.items.push(turn)
  }

  peek(): Turn | undefined {
    return this.items[this.head]
  }

  shift(): Turn | undefined {
    if (this.head >= this.items.length) return undefined
    const turn = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return turn
  }

  /** Removes and returns everything, oldest first. */
  takeAll(): Array<Turn> {
    const all = this.items.slice(this.head) as Array<Turn>
    this.items = []
    this.head = 0
    return all
  }
}
