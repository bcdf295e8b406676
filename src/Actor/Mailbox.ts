/**
 * The FIFO of turns waiting for an activation. A plain array with a moving head: `shift`
 * on a long array is linear in V8, and a mailbox under load holds thousands of entries.
 * A withdrawn turn (its asker was interrupted) stops counting at once and is dropped when
 * it reaches the head. Capacity is enforced by the activation, which knows the policy.
 *
 * @internal
 */
import { type Turn, TurnState } from "./Turn.ts"

/** @internal */
export class Mailbox {
  private items: Array<Turn | undefined> = []
  private head = 0
  private withdrawn = 0

  /** Turns waiting, not counting withdrawn ones. */
  get size(): number {
    return this.items.length - this.head - this.withdrawn
  }

  push(turn: Turn): void {
    this.items.push(turn)
  }

  /** Marks a waiting turn as withdrawn; it no longer counts toward the size. */
  withdraw(turn: Turn): void {
    turn.state = TurnState.Cancelled
    this.withdrawn++
  }

  /** The oldest turn still waiting. */
  peek(): Turn | undefined {
    this.dropWithdrawn()
    return this.items[this.head]
  }

  shift(): Turn | undefined {
    this.dropWithdrawn()
    return this.take()
  }

  /** Removes and returns every turn still waiting, oldest first. */
  takeAll(): Array<Turn> {
    const all = (this.items.slice(this.head) as Array<Turn>).filter((turn) => turn.state !== TurnState.Cancelled)
    this.items = []
    this.head = 0
    this.withdrawn = 0
    return all
  }

  private dropWithdrawn(): void {
    while (this.withdrawn > 0 && this.items[this.head]?.state === TurnState.Cancelled) {
      this.take()
      this.withdrawn--
    }
  }

  private take(): Turn | undefined {
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
}
