package com.suuupra.flink.clickhouse;

/**
 * How many rows a sink's next batch may hold, and how long it may wait for them. {@code batchRows} and
 * {@code batchIntervalMs} while batches leave with fewer rows than their limit (live traffic); {@code maxBatchRows},
 * and an interval longer in the same proportion, once {@link #FULL_BATCHES_TO_GROW} batches in a row left full: a
 * backlog's drain. Either way a batch leaves by its age only when rows come slower than {@code batchRows} per
 * {@code batchIntervalMs}, so the rate that grew the batches keeps them grown, whatever the parallelism splits it
 * into: with the interval unchanged, a drain at parallelism 2 left each subtask's batches half-full by age.
 *
 * <p>Fewer, larger inserts leave ClickHouse fewer parts to merge, but every batch that large made the raw events'
 * latency worse at a steady rate (a catch-up's large inserts hold the next ones up): live traffic and a short
 * catch-up after a stall keep the small batches (docs/benchmarks.md, "Growing sink batches"). The first batch that
 * leaves by age shrinks them back. Only batches sent by their size or age count; a checkpoint's flush says nothing
 * about the rate.
 */
public final class BatchSizer {
    public static final int FULL_BATCHES_TO_GROW = 3;

    private final int batchRows;
    private final int maxBatchRows;
    private final long batchIntervalMs;
    private final long grownIntervalMs;
    private int limit;
    private long intervalMs;
    private int fullInARow;

    public BatchSizer(int batchRows, int maxBatchRows, long batchIntervalMs) {
        if (batchRows < 1 || maxBatchRows < batchRows || batchIntervalMs < 1) {
            throw new IllegalArgumentException("batch rows must be at least 1, the most rows at least as many and the "
                    + "interval at least 1 ms: " + batchRows + ", " + maxBatchRows + ", " + batchIntervalMs + " ms");
        }
        this.batchRows = batchRows;
        this.maxBatchRows = maxBatchRows;
        this.batchIntervalMs = batchIntervalMs;
        // In doubles, capped: far from overflowing when a timer adds it to the current time.
        this.grownIntervalMs = (long) Math.min((double) batchIntervalMs * maxBatchRows / batchRows, Long.MAX_VALUE / 4);
        this.limit = batchRows;
        this.intervalMs = batchIntervalMs;
    }

    /** A batch is sent once it holds this many rows ... */
    public int limit() {
        return limit;
    }

    /** ... or this long after its first row. */
    public long intervalMs() {
        return intervalMs;
    }

    /** A batch of {@code rows} rows left because it was full or old enough. */
    public void sent(int rows) {
        if (rows < limit) {
            fullInARow = 0;
            limit = batchRows;
            intervalMs = batchIntervalMs;
        } else if (++fullInARow >= FULL_BATCHES_TO_GROW) {
            limit = maxBatchRows;
            intervalMs = grownIntervalMs;
        }
    }
}
