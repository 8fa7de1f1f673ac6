package com.suuupra.flink.search;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.types.RowKind;

import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;
import redis.clients.jedis.commands.ProtocolCommand;
import redis.clients.jedis.exceptions.JedisConnectionException;
import redis.clients.jedis.exceptions.JedisDataException;
import redis.clients.jedis.exceptions.JedisNoScriptException;

/**
 * Writes rows to a Redis-protocol server (see {@link EngineSinkFactory} for the two modes).
 *
 * <p>Batched: a batch is written when it holds {@code max-rows} rows, when {@code interval} has passed since its
 * first row, and before every checkpoint, so a checkpoint never completes with rows unwritten (at-least-once). A
 * restored job writes again what the lost attempt may have written: the script or query must be idempotent (a
 * revision guard, an upsert of absolute values), and then the result is the same as without the failure.
 *
 * <p>A lost connection, a server still loading its data after a restart ({@code LOADING}) or a script cache emptied
 * by a restart ({@code NOSCRIPT}) are retried on a new connection with exponential backoff; after
 * {@code max-retries} the job fails and restarts from its last checkpoint. An error the server gives for the rows
 * themselves (a script error, a bad query) fails the job at once: retrying would not change it.
 */
public class EngineSink implements Sink<RowData> {
    private static final long serialVersionUID = 1L;
    static final Set<LogicalTypeRoot> SUPPORTED = EnumSet.of(LogicalTypeRoot.VARCHAR, LogicalTypeRoot.CHAR,
            LogicalTypeRoot.VARBINARY, LogicalTypeRoot.BINARY, LogicalTypeRoot.BIGINT, LogicalTypeRoot.INTEGER,
            LogicalTypeRoot.SMALLINT, LogicalTypeRoot.DOUBLE, LogicalTypeRoot.BOOLEAN);
    private static final ProtocolCommand GRAPH_QUERY = () -> "GRAPH.QUERY".getBytes(StandardCharsets.UTF_8);
    private static final byte[] EMPTY = new byte[0];
    private static final ByteBuffer EMPTY_KEY = ByteBuffer.wrap(EMPTY);

    /** A column: its name and type, in row order. */
    record Field(String name, LogicalTypeRoot type) implements Serializable {}

    private final String host;
    private final int port;
    private final String password;
    private final boolean graphMode;
    private final String command;
    private final List<String> keyPrefixes;
    private final String graph;
    private final List<Field> fields;
    private final List<Integer> keyPositions;
    private final int flushRows;
    private final long flushIntervalMs;
    private final int maxRetries;
    private final int timeoutMs;

    EngineSink(String host, int port, String password, boolean graphMode, String command, List<String> keyPrefixes,
            String graph, List<Field> fields, List<Integer> keyPositions, int flushRows, long flushIntervalMs,
            int maxRetries, int timeoutMs) {
        this.host = host;
        this.port = port;
        this.password = password;
        this.graphMode = graphMode;
        this.command = command;
        this.keyPrefixes = new ArrayList<>(keyPrefixes);
        this.graph = graph;
        this.fields = new ArrayList<>(fields);
        this.keyPositions = new ArrayList<>(keyPositions);
        this.flushRows = flushRows;
        this.flushIntervalMs = flushIntervalMs;
        this.maxRetries = maxRetries;
        this.timeoutMs = timeoutMs;
    }

    @Override
    public SinkWriter<RowData> createWriter(WriterInitContext context) {
        return new Writer(context.getProcessingTimeService());
    }

    /** One row's values, encoded once when it arrives (the row object is reused by the runtime). */
    private record Encoded(byte[][] values, boolean deleted) {}

    private final class Writer implements SinkWriter<RowData> {
        private final ProcessingTimeService timers;
        // With a primary key the last row per key wins within a batch (an upsert stream's later version).
        private final Map<List<Object>, Encoded> byKey = new LinkedHashMap<>();
        private final List<Encoded> appended = new ArrayList<>();
        private Jedis connection;
        private byte[] scriptSha;
        private boolean timerArmed;

        Writer(ProcessingTimeService timers) {
            this.timers = timers;
        }

        @Override
        public void write(RowData row, Context context) throws IOException {
            if (row.getRowKind() == RowKind.UPDATE_BEFORE) {
                return; // an upsert's new version follows it
            }
            Encoded encoded = new Encoded(encode(row), row.getRowKind() == RowKind.DELETE);
            if (keyPositions.isEmpty()) {
                appended.add(encoded);
            } else {
                List<Object> key = new ArrayList<>(keyPositions.size());
                for (int position : keyPositions) {
                    byte[] value = encoded.values()[position];
                    key.add(value == null ? EMPTY_KEY : ByteBuffer.wrap(value)); // compared by content
                }
                byKey.remove(key); // re-inserted: the batch keeps the order of the last versions
                byKey.put(key, encoded);
            }
            if (size() >= flushRows) {
                flushBatch();
            } else if (!timerArmed) {
                timerArmed = true;
                timers.registerTimer(timers.getCurrentProcessingTime() + flushIntervalMs, time -> {
                    timerArmed = false;
                    flushBatch();
                });
            }
        }

        private int size() {
            return appended.size() + byKey.size();
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            flushBatch();
        }

        private void flushBatch() throws IOException {
            if (size() == 0) {
                return;
            }
            List<Encoded> batch = new ArrayList<>(appended);
            batch.addAll(byKey.values());
            for (int attempt = 0; ; attempt++) {
                try {
                    if (graphMode) {
                        writeGraph(batch);
                    } else {
                        writeScript(batch);
                    }
                    break;
                } catch (JedisConnectionException | Retryable error) {
                    closeConnection();
                    if (attempt >= maxRetries) {
                        throw new IOException("redis-engine sink: " + batch.size() + " rows not written to " + host
                                + ":" + port + " after " + (attempt + 1) + " attempts", error);
                    }
                    sleep(Math.min(5_000L, 100L << Math.min(attempt, 6)));
                }
            }
            appended.clear();
            byKey.clear();
        }

        private void writeScript(List<Encoded> batch) throws Retryable {
            Jedis jedis = connect();
            Pipeline pipeline = jedis.pipelined();
            List<Response<Object>> replies = new ArrayList<>(batch.size());
            for (Encoded row : batch) {
                byte[][] params = new byte[keyPrefixes.size() + row.values().length][];
                for (int i = 0; i < keyPrefixes.size(); i++) {
                    params[i] = concat(keyPrefixes.get(i).getBytes(StandardCharsets.UTF_8), row.values()[0]);
                }
                for (int i = 0; i < row.values().length; i++) {
                    byte[] value = row.values()[i];
                    params[keyPrefixes.size() + i] = value == null ? EMPTY : value;
                }
                replies.add(pipeline.evalsha(scriptSha, keyPrefixes.size(), params));
            }
            pipeline.sync();
            for (Response<Object> reply : replies) {
                check(reply);
            }
        }

        private void writeGraph(List<Encoded> batch) throws Retryable {
            StringBuilder query = new StringBuilder("CYPHER rows=[");
            for (int r = 0; r < batch.size(); r++) {
                Encoded row = batch.get(r);
                query.append(r == 0 ? "{" : ",{");
                for (int i = 0; i < fields.size(); i++) {
                    query.append(fields.get(i).name()).append(':');
                    appendLiteral(query, fields.get(i).type(), row.values()[i]);
                    query.append(',');
                }
                query.append("deleted:").append(row.deleted()).append('}');
            }
            query.append("] ").append(command);
            Jedis jedis = connect();
            Pipeline pipeline = jedis.pipelined();
            Response<Object> reply = pipeline.sendCommand(GRAPH_QUERY, graph.getBytes(StandardCharsets.UTF_8),
                    query.toString().getBytes(StandardCharsets.UTF_8));
            pipeline.sync();
            check(reply);
        }

        private void check(Response<Object> reply) throws Retryable {
            try {
                reply.get();
            } catch (JedisNoScriptException error) {
                scriptSha = null; // the server restarted with an empty script cache: load it again
                throw new Retryable(error);
            } catch (JedisDataException error) {
                String message = String.valueOf(error.getMessage());
                if (message.startsWith("LOADING") || message.startsWith("BUSY") || message.startsWith("TRYAGAIN")) {
                    throw new Retryable(error);
                }
                throw new IllegalStateException("redis-engine sink: the server refused a write: " + message, error);
            }
        }

        private Jedis connect() {
            if (connection == null) {
                DefaultJedisClientConfig.Builder config = DefaultJedisClientConfig.builder()
                        .connectionTimeoutMillis(timeoutMs).socketTimeoutMillis(timeoutMs)
                        .clientName("suuupra-flink-redis-engine");
                if (password != null) {
                    config.password(password);
                }
                connection = new Jedis(host, port, config.build());
            }
            if (!graphMode && scriptSha == null) {
                scriptSha = connection.scriptLoad(command.getBytes(StandardCharsets.UTF_8));
            }
            return connection;
        }

        private void closeConnection() {
            if (connection != null) {
                try {
                    connection.close();
                } catch (RuntimeException ignored) {
                    // the connection is being replaced because it failed
                }
                connection = null;
            }
        }

        @Override
        public void close() {
            closeConnection();
        }
    }

    private byte[][] encode(RowData row) {
        byte[][] values = new byte[fields.size()][];
        for (int i = 0; i < fields.size(); i++) {
            values[i] = row.isNullAt(i) ? null : encodeField(row, i, fields.get(i).type());
        }
        return values;
    }

    private static byte[] encodeField(RowData row, int i, LogicalTypeRoot type) {
        switch (type) {
            case VARCHAR:
            case CHAR:
                return row.getString(i).toBytes();
            case VARBINARY:
            case BINARY:
                return row.getBinary(i);
            case BIGINT:
                return Long.toString(row.getLong(i)).getBytes(StandardCharsets.US_ASCII);
            case INTEGER:
                return Integer.toString(row.getInt(i)).getBytes(StandardCharsets.US_ASCII);
            case SMALLINT:
                return Short.toString(row.getShort(i)).getBytes(StandardCharsets.US_ASCII);
            case DOUBLE:
                return Double.toString(row.getDouble(i)).getBytes(StandardCharsets.US_ASCII);
            case BOOLEAN:
                return Boolean.toString(row.getBoolean(i)).getBytes(StandardCharsets.US_ASCII);
            default:
                throw new IllegalArgumentException("unsupported type " + type);
        }
    }

    /** Cypher text of one value: numbers and booleans as they are, strings quoted and escaped, NULL as null. */
    private static void appendLiteral(StringBuilder query, LogicalTypeRoot type, byte[] value) {
        if (value == null) {
            query.append("null");
            return;
        }
        if (type != LogicalTypeRoot.VARCHAR && type != LogicalTypeRoot.CHAR) {
            query.append(new String(value, StandardCharsets.US_ASCII));
            return;
        }
        query.append('\'');
        String text = new String(value, StandardCharsets.UTF_8);
        for (int k = 0; k < text.length(); k++) {
            char c = text.charAt(k);
            switch (c) {
                case '\\' -> query.append("\\\\");
                case '\'' -> query.append("\\'");
                case '\n' -> query.append("\\n");
                case '\r' -> query.append("\\r");
                case '\t' -> query.append("\\t");
                default -> query.append(c);
            }
        }
        query.append('\'');
    }

    private static byte[] concat(byte[] prefix, byte[] value) {
        byte[] safe = value == null ? EMPTY : value;
        byte[] joined = new byte[prefix.length + safe.length];
        System.arraycopy(prefix, 0, joined, 0, prefix.length);
        System.arraycopy(safe, 0, joined, prefix.length, safe.length);
        return joined;
    }

    private static void sleep(long millis) throws IOException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting to retry", interrupted);
        }
    }

    /** A failure a new attempt may not meet: the server is loading, busy, or lost our script. */
    private static final class Retryable extends Exception {
        private static final long serialVersionUID = 1L;

        Retryable(Throwable cause) {
            super(cause);
        }
    }
}
