package com.suuupra.flink.clickhouse;

/**
 * How many rows a sink's next batch may hold, and how long it may wait for them. {@code batchRows} and
 * {@code batchIntervalMs} while rows come slower than {@code batchRows} per {@code batchIntervalMs} (live traffic);
 * {@code maxBatchRows}, and an interval longer in the same proportion (at most {@link #MAX_INTERVAL_GROWTH} times),
 * once {@link #FULL_BATCHES_TO_GROW} batches in a row left full: a backlog's drain. The batches stay grown while
 * their rows come at least at the rate that grew them, whatever the parallelism splits it into: with the interval
 * unchanged, a drain at parallelism 2 left each subtask's grown batches half-full by their age.
 *
 * <p>Fewer, larger inserts leave ClickHouse fewer parts to merge, but every batch that large made the raw events'
 * latency worse at a steady rate (a catch-up's large inserts hold the next ones up): live traffic and a short
 * catch-up after a stall keep the small batches (docs/benchmarks.md, "Growing sink batches"). A batch sent by its
 * size or age, or flushed by a checkpoint, whose rows came slower than that rate shrinks them back; a checkpoint's
 * flush never grows them (its batch's size says nothing about the rate).
 */
public final class BatchSizer {
    public static final int FULL_BATCHES_TO_GROW = 3;
    /** A grown batch waits at most this many times as long as a small one. */
    public static final int MAX_INTERVAL_GROWTH = 4;

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
        double growth = Math.min((double) maxBatchRows / batchRows, MAX_INTERVAL_GROWTH);
        this.grownIntervalMs = (long) Math.min(batchIntervalMs * growth, Long.MAX_VALUE / 4);
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

    /** A batch of {@code rows} rows left because it was full or old enough, {@code ageMs} after its first row. */
    public void sent(int rows, long ageMs) {
        if (rows >= limit) {
            fullInARow = Math.min(fullInARow + 1, FULL_BATCHES_TO_GROW);
            if (fullInARow == FULL_BATCHES_TO_GROW) {
                limit = maxBatchRows;
                intervalMs = grownIntervalMs;
            }
        } else if (limit == batchRows || slowerThanGrowth(rows, ageMs)) {
            shrink();
        } // else: a grown batch whose interval was capped, cut by its age at the rate that grew it
    }

    /** A checkpoint sent a batch of {@code rows} rows, {@code ageMs} after its first row. */
    public void flushed(int rows, long ageMs) {
        if (limit > batchRows && slowerThanGrowth(rows, ageMs)) {
            shrink();
        }
    }

    private boolean slowerThanGrowth(int rows, long ageMs) {
        return (double) rows * batchIntervalMs < (double) batchRows * ageMs;
    }

    private void shrink() {
        fullInARow = 0;
        limit = batchRows;
        intervalMs = batchIntervalMs;
    }
}
