package com.suuupra.flink.fraud;

import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The offline table of a view in PostgreSQL (the features job's JDBC sink writes every row there, version by
 * version), read for a moment older than every row the online history still keeps: the newest row at or before the
 * moment (ties: the higher version), as Feast's point-in-time join reads it for training.
 *
 * <p>The offline sink may lag the online one: the read waits, up to a deadline, until the table holds every version
 * below the oldest one kept online (a version written twice by a replay counts once). An entity whose wait ran out
 * is not waited for again at the same oldest version (a gap that never fills would stall every later payment).
 */
final class OfflineFeatures implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(OfflineFeatures.class);
    private static final long RETRY_MS = 50;

    private static final int REMEMBERED_GAPS = 10_000;

    private final String url;
    private final Properties properties;
    private final String schema;
    private final int timeoutSeconds;
    private Connection connection;
    /** Per view, its query (the same text every time). */
    private final Map<String, String> queries = new HashMap<>();
    /** (view, entity, oldest kept version) whose wait ran out, the newest {@link #REMEMBERED_GAPS}. */
    private final Map<String, Boolean> gaps = new LinkedHashMap<>(16, 0.75f, true) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > REMEMBERED_GAPS;
        }
    };

    OfflineFeatures(String url, String user, String password, String schema, int timeoutSeconds) {
        this.url = url;
        this.properties = new Properties();
        properties.setProperty("user", user);
        properties.setProperty("password", password);
        // A hung server fails the read (and the job, which restarts) instead of blocking the task for good.
        properties.setProperty("connectTimeout", Integer.toString(timeoutSeconds));
        properties.setProperty("socketTimeout", Integer.toString(timeoutSeconds));
        this.schema = schema;
        this.timeoutSeconds = timeoutSeconds;
    }

    /**
     * The view's row of {@code entity} as of {@code momentMs} among the versions below {@code below}, its values in
     * {@code features} order ({@code asOfFeature} included); null when there is none.
     */
    Long[] read(String view, String joinKey, List<String> features, String asOfFeature, String entity, long momentMs,
            long below, long deadlineNanos) throws SQLException, InterruptedException {
        String sql = queries.computeIfAbsent(view, v -> query(v, joinKey, features, asOfFeature));
        String gap = view + "\u0000" + entity + "\u0000" + below;
        long deadline = gaps.containsKey(gap) ? System.nanoTime() : deadlineNanos;
        while (true) {
            Long[] row = new Long[features.size()];
            long written;
            try {
                written = query(sql, entity, momentMs, below, row);
            } catch (SQLException error) {
                close();
                if (error.getSQLState() == null || !error.getSQLState().startsWith("08")) {
                    throw error;
                }
                // The connection broke (a restarted server, a dropped idle connection): once more on a new one.
                written = query(sql, entity, momentMs, below, row);
            }
            Long asOf = row[features.indexOf(asOfFeature)];
            if (written >= below - 1 || System.nanoTime() >= deadline) {
                if (written < below - 1) {
                    gaps.put(gap, Boolean.TRUE);
                    LOG.warn("{}: the offline store is still behind the online history of {} (versions below {});"
                            + " serving its newest row as of the moment", view, entity, below);
                }
                return asOf == null ? null : row;
            }
            Thread.sleep(RETRY_MS);
        }
    }

    /** How many versions below are written, and the newest row at or before the moment among them. */
    private String query(String view, String joinKey, List<String> features, String asOfFeature) {
        String columns = features.stream().map(f -> "h." + quote(f)).collect(Collectors.joining(", "));
        String table = quote(schema) + "." + quote(view);
        return "SELECT (SELECT count(DISTINCT version) FROM " + table + " t WHERE t." + quote(joinKey)
                + " = ? AND t.version < ?), " + columns + " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM "
                + table + " t WHERE t." + quote(joinKey) + " = ? AND t." + quote(asOfFeature) + " <= ? AND t.version < ?"
                + " ORDER BY t." + quote(asOfFeature) + " DESC, t.version DESC LIMIT 1) h ON true";
    }

    /** Fills {@code row} (null where the table has nothing) and returns how many versions below are written. */
    private long query(String sql, String entity, long momentMs, long below, Long[] row) throws SQLException {
        try (PreparedStatement statement = connection().prepareStatement(sql)) {
            statement.setQueryTimeout(timeoutSeconds);
            statement.setString(1, entity);
            statement.setLong(2, below);
            statement.setString(3, entity);
            statement.setLong(4, momentMs);
            statement.setLong(5, below);
            try (ResultSet result = statement.executeQuery()) {
                result.next();
                long written = result.getLong(1);
                for (int i = 0; i < row.length; i++) {
                    long value = result.getLong(i + 2);
                    row[i] = result.wasNull() ? null : value;
                }
                return written;
            }
        }
    }

    private Connection connection() throws SQLException {
        if (connection == null) {
            Connection opened;
            try {
                Driver driver = (Driver) Class.forName("org.postgresql.Driver", true,
                        OfflineFeatures.class.getClassLoader()).getDeclaredConstructor().newInstance();
                opened = driver.connect(url, properties);
            } catch (ReflectiveOperationException error) {
                throw new SQLException("pgjdbc (org.postgresql:postgresql) is not on the job's classpath", error);
            }
            if (opened == null) {
                throw new SQLException("pgjdbc does not accept the URL " + url);
            }
            try {
                opened.setAutoCommit(true);
            } catch (SQLException error) {
                opened.close();
                throw error;
            }
            connection = opened;
        }
        return connection;
    }

    private static String quote(String identifier) {
        return "\"" + identifier.replace("\"", "\"\"") + "\"";
    }

    @Override
    public void close() {
        if (connection != null) {
            try {
                connection.close();
            } catch (SQLException ignored) {
                // closing a broken connection: nothing left to release
            }
            connection = null;
        }
    }
}
