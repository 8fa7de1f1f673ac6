package com.suuupra.flink.redis;

import java.io.Closeable;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads the rows the {@code feast-redis} sink keeps per entity and view with a history ({@code history.max-rows}):
 * the newest row at or before a moment, as Feast's point-in-time join picks it from the offline store (ties: the
 * higher version, which the member's 19-digit version prefix orders).
 *
 * <p>All requests of one call go out in one pipeline: per request the newest member with a score at or before the
 * moment and the oldest member kept (which says, when the first finds nothing, whether older rows ever existed).
 */
public final class FeatureHistory implements Closeable {
    private static final Logger LOG = LoggerFactory.getLogger(FeatureHistory.class);
    private static final byte[] ZREVRANGEBYSCORE = bytes("ZREVRANGEBYSCORE");
    private static final byte[] ZRANGE = bytes("ZRANGE");
    private static final byte[] MINUS_INFINITY = bytes("-inf");
    private static final byte[] LIMIT = bytes("LIMIT");
    private static final byte[] ZERO = bytes("0");
    private static final byte[] ONE = bytes("1");

    /** The newest row of {@code view} for {@code entity} with a time at or before {@code momentMs}. */
    public record Request(String view, String joinKey, String entity, long momentMs) {}

    /**
     * A request's answer: the row's values in the view's feature order ({@code null} values were empty), or no row
     * and the version of the oldest row still kept (0: the entity has no row at all).
     */
    public record Reply(Long[] values, long oldestKeptVersion) {
        public boolean found() {
            return values != null;
        }
    }

    private final String host;
    private final int port;
    private final String password;
    private final int database;
    private final String project;
    private final int timeoutMs;
    private RespConnection connection;

    public FeatureHistory(String host, int port, String password, int database, String project, int timeoutMs) {
        this.host = host;
        this.port = port;
        this.password = password;
        this.database = database;
        this.project = project;
        this.timeoutMs = timeoutMs;
    }

    /** One reply per request, in order. A broken connection is opened again once; a second failure is thrown. */
    public List<Reply> read(List<Request> requests) throws IOException {
        try {
            return readOnce(requests);
        } catch (RespConnection.ServerError error) {
            throw error;
        } catch (IOException error) {
            LOG.warn("reading the feature history from Redis failed ({}); once more on a new connection",
                    error.toString());
            close();
            return readOnce(requests);
        }
    }

    private List<Reply> readOnce(List<Request> requests) throws IOException {
        RespConnection redis = connection();
        for (Request request : requests) {
            byte[] key = FeastLayout.historyKey(
                    request.view(), FeastLayout.entityKey(request.joinKey(), request.entity(), project));
            redis.send(ZREVRANGEBYSCORE, key, bytes(Long.toString(request.momentMs())), MINUS_INFINITY, LIMIT, ZERO,
                    ONE);
            redis.send(ZRANGE, key, ZERO, ZERO);
        }
        List<Object> replies = redis.sync();
        List<Reply> result = new ArrayList<>(requests.size());
        for (int i = 0; i < requests.size(); i++) {
            List<?> newest = (List<?>) replies.get(2 * i);
            List<?> oldest = (List<?>) replies.get(2 * i + 1);
            if (!newest.isEmpty()) {
                result.add(new Reply(values((byte[]) newest.get(0)), 0));
            } else {
                result.add(new Reply(null, oldest.isEmpty() ? 0 : version((byte[]) oldest.get(0))));
            }
        }
        return result;
    }

    /** A member is {@code <version>:<v1>,<v2>,...} with an empty text for a missing value. */
    static Long[] values(byte[] member) {
        String text = new String(member, StandardCharsets.US_ASCII);
        String[] parts = text.substring(text.indexOf(':') + 1).split(",", -1);
        Long[] values = new Long[parts.length];
        for (int i = 0; i < parts.length; i++) {
            values[i] = parts[i].isEmpty() ? null : Long.parseLong(parts[i]);
        }
        return values;
    }

    static long version(byte[] member) {
        String text = new String(member, StandardCharsets.US_ASCII);
        return Long.parseLong(text.substring(0, text.indexOf(':')));
    }

    private RespConnection connection() throws IOException {
        if (connection == null) {
            connection = RespConnection.open(host, port, password, database, timeoutMs);
        }
        return connection;
    }

    @Override
    public void close() throws IOException {
        if (connection != null) {
            RespConnection closing = connection;
            connection = null;
            closing.close();
        }
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
