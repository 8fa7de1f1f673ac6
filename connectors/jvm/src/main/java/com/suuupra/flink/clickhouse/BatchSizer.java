package com.suuupra.flink.clickhouse;

/**
 * How many rows a sink's next batch may hold. {@code batchRows} while batches leave with fewer (live traffic), and
 * {@code maxBatchRows} once {@link #FULL_BATCHES_TO_GROW} batches in a row left with at least {@code batchRows}: a
 * backlog's drain. Fewer, larger inserts leave ClickHouse fewer parts to merge, but every batch that large made
 * the raw events' latency worse at a steady rate (a catch-up's large inserts hold the next ones up): live traffic and
 * a short catch-up after a stall keep the small batches (docs/benchmarks.md, "Growing sink batches").
 *
 * <p>Only batches sent by their size or age count; a checkpoint's flush says nothing about the rate.
 */
public final class BatchSizer {
    public static final int FULL_BATCHES_TO_GROW = 3;

    private final int batchRows;
    private final int maxBatchRows;
    private int limit;
    private int fullInARow;

    public BatchSizer(int batchRows, int maxBatchRows) {
        if (batchRows < 1 || maxBatchRows < batchRows) {
            throw new IllegalArgumentException("batch rows must be at least 1 and the most rows at least as many: "
                    + batchRows + ", " + maxBatchRows);
        }
        this.batchRows = batchRows;
        this.maxBatchRows = maxBatchRows;
        this.limit = batchRows;
    }

    /** A batch is sent once it holds this many rows. */
    public int limit() {
        return limit;
    }

    /** A batch of {@code rows} rows left because it was full or old enough. */
    public void sent(int rows) {
        if (rows < batchRows) {
            fullInARow = 0;
            limit = batchRows;
        } else if (++fullInARow >= FULL_BATCHES_TO_GROW) {
            limit = maxBatchRows;
        }
    }
}
