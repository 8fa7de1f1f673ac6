package com.suuupra.flink.redis;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.types.RowKind;

/**
 * Writes rows of one Feast feature view into Redis in Feast's online layout ({@link FeastLayout}).
 *
 * <p>Batched: the writer keeps the newest row per entity and writes the batch in one pipeline when it holds
 * {@code max-rows} entities, when {@code interval} has passed since its first row, and before every checkpoint
 * (at-least-once: a restored job writes again what the lost attempt may have written). The pipeline runs on a thread
 * of the writer's own while the task goes on computing (waiting for Redis' replies took a fifth of the features job's
 * busiest task); one batch is in flight at most, a failed one fails the next hand-over, and a checkpoint waits until
 * its batch is written.
 *
 * <p>Newest row wins, as in Feast's own Redis writes: a Lua script writes an entity's hash only if the stored
 * {@code _ts:view} is not newer than the row's event time, so a row replayed after a restore, or a row of another
 * writer that already went further, is never overwritten by an older one. An equal time overwrites: it is a later
 * version of the same moment (an out-of-order event folded into the same as-of time).
 *
 * <p>With a history ({@code history.max-rows} N > 0), every row, not only the newest, also goes into the entity's
 * sorted set ({@link FeastLayout#historyKey}): score the row's time, member {@code <version, 19 digits>:<values>}
 * (the features in column order, comma-separated, empty for null). Equal times then rank by version, and a replayed
 * row is the same member again. The set keeps the N newest rows (ZADD, then ZREMRANGEBYRANK: plain commands, no
 * script); a reader that finds no row at or before its moment in a full set (N rows) cannot tell whether older rows
 * were dropped, and reads the offline store (suuupra/features/as_of.py).
 */
public class FeastRedisSink implements Sink<RowData> {
    private static final long serialVersionUID = 1L;
    static final Set<LogicalTypeRoot> SUPPORTED = EnumSet.of(
            LogicalTypeRoot.BIGINT, LogicalTypeRoot.INTEGER, LogicalTypeRoot.DOUBLE, LogicalTypeRoot.VARCHAR);

    /** KEYS[1] the entity's hash; ARGV: _ts field, row time in ms, _ts value, then feature field/value pairs. */
    static final String NEWEST_WINS = String.join("\n",
            "local function varint(s, i)",
            "  local n, m = 0, 1",
            "  while true do",
            "    local b = string.byte(s, i)",
            "    i = i + 1",
            "    n = n + (b % 128) * m",
            "    if b < 128 then return n, i end",
            "    m = m * 128",
            "  end",
            "end",
            "local function millis(s)",
            "  local seconds, nanos, i = 0, 0, 1",
            "  while i <= #s do",
            "    local tag = string.byte(s, i)",
            "    local v",
            "    v, i = varint(s, i + 1)",
            "    if tag == 8 then seconds = v elseif tag == 16 then nanos = v end",
            "  end",
            "  return seconds * 1000 + math.floor(nanos / 1000000)",
            "end",
            "local stored = redis.call('HGET', KEYS[1], ARGV[1])",
            "if stored and millis(stored) > tonumber(ARGV[2]) then return 0 end",
            "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], unpack(ARGV, 4))",
            "return 1");


    /** A feature column: its name, type and position in the row. */
    record Feature(String name, LogicalTypeRoot type, int position) implements Serializable {}

    private final String host;
    private final int port;
    private final String password;
    private final int database;
    private final String project;
    private final String view;
    private final String joinKey;
    private final int keyIndex;
    private final int timestampIndex;
    private final List<Feature> features;
    private final long flushIntervalMs;
    private final int flushRows;
    private final int maxRetries;
    private final int timeoutMs;
    private final int versionIndex;
    private final int historyRows;

    FeastRedisSink(String host, int port, String password, int database, String project, String view, String joinKey,
            int keyIndex, int timestampIndex, List<Feature> features, long flushIntervalMs, int flushRows,
            int maxRetries, int timeoutMs, int versionIndex, int historyRows) {
        this.host = host;
        this.port = port;
        this.password = password;
        this.database = database;
        this.project = project;
        this.view = view;
        this.joinKey = joinKey;
        this.keyIndex = keyIndex;
        this.timestampIndex = timestampIndex;
        this.features = new ArrayList<>(features);
        this.flushIntervalMs = flushIntervalMs;
        this.flushRows = flushRows;
        this.maxRetries = maxRetries;
        this.timeoutMs = timeoutMs;
        this.versionIndex = versionIndex;
        this.historyRows = historyRows;
    }

    @Override
    public SinkWriter<RowData> createWriter(WriterInitContext context) {
        return new Writer(context.getProcessingTimeService());
    }

    private static final byte[] ZADD = bytes("ZADD");
    private static final byte[] ZREMRANGEBYRANK = bytes("ZREMRANGEBYRANK");
    private static final byte[] ZERO = bytes("0");
    private static final int VERSION_DIGITS = 19;
    private static final String VERSION_PADDING = "0".repeat(VERSION_DIGITS);

    /** One entity's rows for its history in this batch: score, member (the newest N at most). */
    private static final class History {
        final ArrayDeque<byte[][]> scored = new ArrayDeque<>();
    }

    /** One entity's pending write: its time and the EVALSHA arguments after the key. */
    private record Pending(byte[] key, long timeMs, byte[][] arguments) {}

    private final class Writer implements SinkWriter<RowData> {
        private final ProcessingTimeService timers;
        private Map<ByteBuffer, Pending> buffer = new LinkedHashMap<>();
        /** Per entity, the batch's rows for its history (arrival order, the newest N at most): score, member. */
        private Map<ByteBuffer, History> histories = new LinkedHashMap<>();
        /** Writes a batch to Redis while the task computes the next one; one batch in flight at most. */
        private final ExecutorService io = Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, "feast-redis-" + view);
            thread.setDaemon(true);
            return thread;
        });
        private Future<?> inFlight;
        private final byte[][] featureFields;
        private final byte[] timestampField;
        private volatile RespConnection connection;
        private byte[] scriptSha;
        /** ZREMRANGEBYRANK's stop: every rank below the newest N. */
        private final byte[] keepFrom = bytes(Integer.toString(-historyRows - 1));
        private boolean timerSet;

        Writer(ProcessingTimeService timers) {
            this.timers = timers;
            featureFields = new byte[features.size()][];
            for (int i = 0; i < features.size(); i++) {
                featureFields[i] = FeastLayout.featureField(view, features.get(i).name());
            }
            timestampField = FeastLayout.timestampField(view);
        }

        @Override
        public void write(RowData row, Context context) throws IOException, InterruptedException {
            if (row.getRowKind() == RowKind.DELETE || row.getRowKind() == RowKind.UPDATE_BEFORE) {
                return; // an online row is replaced by a newer one, never deleted
            }
            if (row.isNullAt(keyIndex) || row.isNullAt(timestampIndex)) {
                throw new IOException("feast-redis sink " + view + ": a row without " + joinKey + " or time");
            }
            // Everything is copied out of the row now: with object reuse the row is overwritten after this call.
            byte[] key = FeastLayout.entityKey(joinKey, row.getString(keyIndex).toString(), project);
            long timeMs = row.getLong(timestampIndex);
            ByteBuffer bufferKey = ByteBuffer.wrap(key);
            if (historyRows > 0) {
                History rows = histories.computeIfAbsent(bufferKey, k -> new History());
                rows.scored.addLast(new byte[][] {Long.toString(timeMs).getBytes(StandardCharsets.US_ASCII),
                        member(row)});
                if (rows.scored.size() > historyRows) {
                    rows.scored.removeFirst();
                }
            }
            Pending previous = buffer.get(bufferKey);
            if (previous != null && previous.timeMs() > timeMs) {
                return;
            }
            byte[][] arguments = new byte[3 + 2 * features.size()][];
            arguments[0] = timestampField;
            arguments[1] = Long.toString(timeMs).getBytes(StandardCharsets.US_ASCII);
            arguments[2] = FeastLayout.timestamp(timeMs);
            for (int i = 0; i < features.size(); i++) {
                arguments[3 + 2 * i] = featureFields[i];
                arguments[4 + 2 * i] = value(row, features.get(i));
            }
            buffer.put(bufferKey, new Pending(key, timeMs, arguments));
            if (buffer.size() >= flushRows) {
                writeBuffer();
            } else if (!timerSet) {
                timerSet = true;
                timers.registerTimer(timers.getCurrentProcessingTime() + flushIntervalMs, time -> {
                    timerSet = false;
                    writeBuffer();
                });
            }
        }

        private byte[] member(RowData row) {
            StringBuilder text = new StringBuilder(32 + 8 * features.size());
            String version = Long.toString(row.getLong(versionIndex));
            text.append(VERSION_PADDING, 0, VERSION_DIGITS - version.length()).append(version).append(':');
            for (int i = 0; i < features.size(); i++) {
                Feature feature = features.get(i);
                if (i > 0) {
                    text.append(',');
                }
                if (!row.isNullAt(feature.position())) {
                    text.append(row.getLong(feature.position())); // the factory allows BIGINT only with a history
                }
            }
            return text.toString().getBytes(StandardCharsets.US_ASCII);
        }

        private byte[] value(RowData row, Feature feature) {
            int at = feature.position();
            boolean isNull = row.isNullAt(at);
            switch (feature.type()) {
                case BIGINT:
                    return FeastLayout.int64Value(isNull ? null : row.getLong(at));
                case INTEGER:
                    return FeastLayout.int32Value(isNull ? null : row.getInt(at));
                case DOUBLE:
                    return FeastLayout.doubleValue(isNull ? null : row.getDouble(at));
                default:
                    return FeastLayout.stringValue(isNull ? null : row.getString(at).toString());
            }
        }

        @Override
        public void flush(boolean endOfInput) throws IOException, InterruptedException {
            writeBuffer();
            awaitInFlight(); // a checkpoint completes only once its rows are in Redis
        }

        /** Hands the batch to the I/O thread, after the previous batch is written (or its failure is thrown). */
        private void writeBuffer() throws IOException, InterruptedException {
            if (buffer.isEmpty() && histories.isEmpty()) {
                return;
            }
            awaitInFlight();
            Map<ByteBuffer, Pending> rows = buffer;
            Map<ByteBuffer, History> history = histories;
            buffer = new LinkedHashMap<>();
            histories = new LinkedHashMap<>();
            inFlight = io.submit(() -> {
                send(rows, history);
                return null;
            });
        }

        private void awaitInFlight() throws IOException, InterruptedException {
            if (inFlight == null) {
                return;
            }
            try {
                inFlight.get();
            } catch (ExecutionException failed) {
                Throwable cause = failed.getCause();
                if (cause instanceof IOException io) {
                    throw io;
                }
                throw new IOException("feast-redis sink " + view + ": writing a batch failed", cause);
            } finally {
                inFlight = null;
            }
        }

        /** On the I/O thread: one pipeline for the batch, retried on a new connection. */
        private void send(Map<ByteBuffer, Pending> rows, Map<ByteBuffer, History> history)
                throws IOException, InterruptedException {
            for (int attempt = 0; ; attempt++) {
                try {
                    connect();
                    for (Pending pending : rows.values()) {
                        byte[][] command = new byte[4 + pending.arguments().length][];
                        command[0] = "EVALSHA".getBytes(StandardCharsets.US_ASCII);
                        command[1] = scriptSha;
                        command[2] = "1".getBytes(StandardCharsets.US_ASCII);
                        command[3] = pending.key();
                        System.arraycopy(pending.arguments(), 0, command, 4, pending.arguments().length);
                        connection.send(command);
                    }
                    for (Map.Entry<ByteBuffer, History> entry : history.entrySet()) {
                        byte[] historyKey = FeastLayout.historyKey(view, entry.getKey().array());
                        byte[][] command = new byte[2 + 2 * entry.getValue().scored.size()][];
                        command[0] = ZADD;
                        command[1] = historyKey;
                        int at = 2;
                        for (byte[][] scored : entry.getValue().scored) {
                            command[at++] = scored[0];
                            command[at++] = scored[1];
                        }
                        connection.send(command);
                        connection.send(ZREMRANGEBYRANK, historyKey, ZERO, keepFrom);
                    }
                    connection.sync();
                    return;
                } catch (IOException error) {
                    disconnect();
                    if (attempt >= maxRetries) {
                        throw new IOException("feast-redis sink " + view + ": writing " + rows.size()
                                + " rows to " + host + ":" + port + " failed " + (attempt + 1) + " times", error);
                    }
                    Thread.sleep(Math.min(5_000L, 100L << attempt));
                }
            }
        }

        private void connect() throws IOException {
            if (connection != null) {
                return;
            }
            connection = RespConnection.open(host, port, password, database, timeoutMs);
            // Loaded on every new connection: a restarted Redis has forgotten it (NOSCRIPT), a new one never had it.
            scriptSha = (byte[]) connection.call(bytes("SCRIPT"), bytes("LOAD"), bytes(NEWEST_WINS));

        }

        private void disconnect() {
            if (connection != null) {
                try {
                    connection.close();
                } catch (IOException ignored) {
                    // the connection is being dropped because it failed
                }
                connection = null;
            }
        }

        @Override
        public void close() {
            // Interrupts a retry's sleep; a blocked read ends within the socket timeout. Only then is the connection
            // closed here: until the I/O thread is done, it is that thread's.
            io.shutdownNow();
            try {
                io.awaitTermination(timeoutMs + 5_000L, TimeUnit.MILLISECONDS);
            } catch (InterruptedException interrupted) {
                Thread.currentThread().interrupt();
            }
            disconnect();
        }
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
