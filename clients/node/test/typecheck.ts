// Compiled (not run) by `npm run typecheck`: what a TypeScript caller may
// and may not write.  Each @ts-expect-error line must fail to compile.
import { Client, Pool } from 'pg';
import { createPool, idempotent, InsufficientFunds, Ledger, type HoldItem, type Leg } from '../dist/index';

export async function usage(): Promise<void> {
    const pool = new Pool();
    const viaPool = new Ledger(pool);
    const viaClient = new Ledger(new Client());
    const pc = await pool.connect();
    const viaPoolClient = new Ledger(pc);
    pc.release();

    const tx: string = await viaPool.transfer('a', 'b', '1.00', { idempotencyKey: 'k' });
    const released: string = await viaPool.void(tx, 'reason');
    const legs: Leg[] = [{ account: 'a', amount: '-1.00' }, { account: 'b', amount: 1n }];
    await viaClient.post(legs);
    const available: string | null = await viaPoolClient.availableBalance('a');
    await idempotent(pool, (l, key) => l.transfer('a', 'b', '1', { idempotencyKey: key }));
    await idempotent(async () => { const c = new Client(); await c.connect(); return c; }, (l) => l.balance('a'));
    await idempotent(createPool(), (l) => l.balance('a'), { key: 'k', attempts: 3 });
    try {
        await viaPool.transfer('a', 'b', '2');
    } catch (e) {
        if (e instanceof InsufficientFunds) {
            const requested: string | undefined = e.facts.requested;
            void requested;
        }
    }
    const holds: HoldItem[] = [{ fromAccount: 'a', amount: '5.00', toAccount: 'b', submitWithin: '90 seconds' }];
    const held = await viaPool.holdBatch(holds, { atomic: true });
    const holdId: string | null = held[0].holdId;
    await viaPool.captureBatch([{ holdId: holdId ?? '', amount: 2n }, { holdId: 'h', amount: null }]);
    const releasedNow: string | null = (await viaPool.voidBatch([{ holdId: 'h', reason: 'r' }]))[0].released;
    void releasedNow;
    // @ts-expect-error a JS number is not an amount
    await viaPool.transfer('a', 'b', 5);
    // @ts-expect-error nor in a batch of holds
    await viaPool.holdBatch([{ fromAccount: 'a', amount: 5 }]);
    // @ts-expect-error a void needs its reason
    await viaPool.voidBatch([{ holdId: 'h' }]);
    // @ts-expect-error nor in a leg
    await viaPool.post([{ account: 'a', amount: -1 }, { account: 'b', amount: 1 }]);
    // @ts-expect-error legs are objects, not tuples
    await viaPool.post([['a', '-1'], ['b', '1']]);
    void released;
    void available;
}
