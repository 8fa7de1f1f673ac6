package com.suuupra.flink.clickhouse;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.table.data.RowData;
import org.apache.flink.types.RowKind;

/**
 * Buffers rows as RowBinary and inserts them in batches (by size or age) from a background thread, so the task goes
 * on encoding the next batch while ClickHouse stores the last one. A batch's size limit and age grow after a few
 * batches in a row left full, and shrink back once one's rows came slower than that ({@link BatchSizer}).
 *
 * <p>At-least-once: {@link #flush} (before every checkpoint barrier and at the end of input) sends what is buffered
 * and waits for every insert in flight, so a checkpoint completes only once its rows are in ClickHouse; a failed
 * insert (after its retries) fails the task, which restarts from the last checkpoint. Batches of one writer are
 * inserted one after another, in order.
 *
 * <p>Upsert tables (a primary key) keep the newest row per key within a batch; a DELETE writes the key with every
 * other column at its default (ClickHouse has no batched delete; the tables are ReplacingMergeTrees keyed like the
 * sink, read with FINAL). UPDATE_BEFORE rows are not needed: the sink asks the planner for none.
 */
final class ClickHouseSinkWriter implements SinkWriter<RowData> {
    /** A spare buffer up to this many times what a batch is expected to need is reused, a larger one dropped... */
    private static final int SPARE_SLACK = 4;
    /** ... unless it is at most this large. */
    private static final int SPARE_ALWAYS_KEPT_BYTES = 1 << 20;

    private final ClickHouseSinkConfig config;
    private final ProcessingTimeService timers;
    private final ClickHouseHttp http;
    private final RowBinaryEncoder encoder;
    private final ExecutorService sender;
    private final ArrayDeque<Future<?>> inFlight = new ArrayDeque<>();
    private final BatchSizer sizer;
    /**
     * Buffers whose insert completed, for the next batches: a drain's batches are tens of megabytes, and a fresh one
     * each time is zeroed, then copied by young collections while its insert is in flight. At most one more buffer
     * than inserts in flight exists; one far larger than the next batch needs is dropped ({@link #spareOr}).
     */
    private final ConcurrentLinkedQueue<RowBinaryBuffer> spare = new ConcurrentLinkedQueue<>();

    private RowBinaryBuffer appended;
    private int appendedRows;
    private final Map<Key, byte[]> upserted = new LinkedHashMap<>();
    private final RowBinaryBuffer scratch = new RowBinaryBuffer(256);
    /** When the batch being buffered got its first row (processing time, ms). */
    private long firstRowAt;
    /** Counts batches sent: a timer armed for an earlier batch finds it changed and does nothing. */
    private long batchNumber;
    private boolean timerArmed;

    ClickHouseSinkWriter(ClickHouseSinkConfig config, ProcessingTimeService timers, String threadName)
            throws IOException {
        this.config = config;
        this.timers = timers;
        this.http = new ClickHouseHttp(config);
        try {
            this.encoder = RowBinaryEncoder.forColumns(
                    config.qualifiedTable(), config.fieldNames, config.fieldPositions, config.fieldTypes, http.columns());
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while reading the columns of " + config.qualifiedTable(), interrupted);
        }
        this.sizer = new BatchSizer(config.batchRows, config.maxBatchRows, config.batchIntervalMs);
        this.appended = new RowBinaryBuffer(64 * 1024);
        this.sender = Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, threadName);
            thread.setDaemon(true);
            return thread;
        });
    }

    @Override
    public void write(RowData row, Context context) throws IOException, InterruptedException {
        throwIfAnInsertFailed();
        RowKind kind = row.getRowKind();
        if (kind == RowKind.UPDATE_BEFORE) {
            return;
        }
        int rows;
        if (config.upsert()) {
            scratch.reset();
            encoder.encodeFields(row, config.keyFields, scratch);
            Key key = new Key(scratch.toByteArray());
            scratch.reset();
            if (kind == RowKind.DELETE) {
                encoder.encodeKeyWithDefaults(row, config.keyFields, scratch);
            } else {
                encoder.encode(row, scratch);
            }
            upserted.remove(key); // so the batch is written in the order of each key's newest change
            upserted.put(key, scratch.toByteArray());
            rows = upserted.size();
        } else {
            if (kind != RowKind.INSERT) {
                throw new IOException("ClickHouse table " + config.qualifiedTable() + " has no primary key in Flink, "
                        + "so it takes inserts only; got a " + kind + " row: declare PRIMARY KEY (...) NOT ENFORCED");
            }
            encoder.encode(row, appended);
            rows = ++appendedRows;
        }
        if (!timerArmed) { // the batch's first row: the timer is armed below unless the row fills the batch
            firstRowAt = timers.getCurrentProcessingTime();
        }
        if (rows >= sizer.limit()) {
            sizer.sent(sendBuffered(), timers.getCurrentProcessingTime() - firstRowAt);
        } else if (!timerArmed) {
            timerArmed = true;
            long armedFor = batchNumber;
            timers.registerTimer(firstRowAt + sizer.intervalMs(), firedFor -> {
                if (batchNumber == armedFor) {
                    // Its age now, not the time the timer was set for: a late timer's batch waited longer.
                    sizer.sent(sendBuffered(), timers.getCurrentProcessingTime() - firstRowAt);
                }
            });
        }
    }

    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
        long ageMs = timers.getCurrentProcessingTime() - firstRowAt;
        int rows = sendBuffered();
        if (rows > 0) {
            sizer.flushed(rows, ageMs);
        }
        while (!inFlight.isEmpty()) {
            awaitOldest();
        }
    }

    @Override
    public void close() {
        sender.shutdownNow();
    }

    /** Sends what is buffered, if anything; returns how many rows. */
    private int sendBuffered() throws IOException, InterruptedException {
        batchNumber++;
        timerArmed = false;
        int rows = config.upsert() ? upserted.size() : appendedRows;
        if (rows == 0) {
            return 0;
        }
        while (inFlight.size() >= config.maxInFlight) {
            awaitOldest(); // back-pressure: ClickHouse is behind (and the oldest insert's buffer becomes spare)
        }
        RowBinaryBuffer body;
        if (config.upsert()) {
            int bytes = 0;
            for (byte[] encoded : upserted.values()) {
                bytes += encoded.length;
            }
            body = spareOr(bytes);
            for (byte[] encoded : upserted.values()) {
                body.putBytes(encoded, 0, encoded.length);
            }
            upserted.clear();
        } else {
            body = appended;
            appended = spareOr(body.size() + body.size() / 8);
            appendedRows = 0;
        }
        inFlight.add(sender.submit(() -> {
            if (http.insert(config.fieldNames, body.array(), body.size(), rows) == 1) {
                // An attempt given up on (a timeout) might still be reading its body: such a buffer is not reused.
                body.reset();
                spare.offer(body);
            }
            return null;
        }));
        return rows;
    }

    /**
     * A spare buffer, empty, or a new one of {@code capacity} bytes (what the batch is expected to need). Spares far
     * larger than that are dropped, so a drain's large buffers do not stay once the batches are small again.
     */
    private RowBinaryBuffer spareOr(int capacity) {
        long kept = Math.max((long) capacity * SPARE_SLACK, SPARE_ALWAYS_KEPT_BYTES);
        for (RowBinaryBuffer buffer = spare.poll(); buffer != null; buffer = spare.poll()) {
            if (buffer.capacity() <= kept) {
                return buffer;
            }
        }
        return new RowBinaryBuffer(capacity);
    }

    private void awaitOldest() throws IOException, InterruptedException {
        Future<?> oldest = inFlight.poll();
        if (oldest != null) {
            result(oldest);
        }
    }

    private void throwIfAnInsertFailed() throws IOException, InterruptedException {
        while (!inFlight.isEmpty() && inFlight.peek().isDone()) {
            result(inFlight.poll());
        }
    }

    private static void result(Future<?> insert) throws IOException, InterruptedException {
        try {
            insert.get();
        } catch (ExecutionException failed) {
            Throwable cause = failed.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException("a ClickHouse insert failed: " + cause, cause);
        }
    }

    /** A row's key as the bytes of its key fields. */
    private static final class Key {
        private final byte[] bytes;
        private final int hash;

        Key(byte[] bytes) {
            this.bytes = bytes;
            this.hash = Arrays.hashCode(bytes);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Key key && hash == key.hash && Arrays.equals(bytes, key.bytes);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }
}
