package com.suuupra.flink.fraud;

import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.List;
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
 * below the oldest one kept online (a version written twice by a replay counts once).
 */
final class OfflineFeatures implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(OfflineFeatures.class);
    private static final long RETRY_MS = 50;

    private final String url;
    private final Properties credentials;
    private final String schema;
    private Connection connection;

    OfflineFeatures(String url, String user, String password, String schema) {
        this.url = url;
        this.credentials = new Properties();
        credentials.setProperty("user", user);
        credentials.setProperty("password", password);
        this.schema = schema;
    }

    /**
     * The view's row of {@code entity} as of {@code momentMs} among the versions below {@code below}, its values in
     * {@code features} order ({@code asOfFeature} included); null when there is none.
     */
    Long[] read(String view, String joinKey, List<String> features, String asOfFeature, String entity, long momentMs,
            long below, long deadlineNanos) throws SQLException, InterruptedException {
        String columns = features.stream().map(f -> "h." + quote(f)).collect(Collectors.joining(", "));
        String table = quote(schema) + "." + quote(view);
        String sql = "SELECT (SELECT count(DISTINCT version) FROM " + table + " t WHERE t." + quote(joinKey)
                + " = ? AND t.version < ?), " + columns + " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM "
                + table + " t WHERE t." + quote(joinKey) + " = ? AND t." + quote(asOfFeature) + " <= ? AND t.version < ?"
                + " ORDER BY t." + quote(asOfFeature) + " DESC, t.version DESC LIMIT 1) h ON true";
        while (true) {
            long written;
            Long[] row = new Long[features.size()];
            try (PreparedStatement statement = connection().prepareStatement(sql)) {
                statement.setString(1, entity);
                statement.setLong(2, below);
                statement.setString(3, entity);
                statement.setLong(4, momentMs);
                statement.setLong(5, below);
                try (ResultSet result = statement.executeQuery()) {
                    result.next();
                    written = result.getLong(1);
                    for (int i = 0; i < row.length; i++) {
                        long value = result.getLong(i + 2);
                        row[i] = result.wasNull() ? null : value;
                    }
                }
            } catch (SQLException error) {
                close(); // a restarted server: the next read opens a new connection, this one fails the job
                throw error;
            }
            Long asOf = row[features.indexOf(asOfFeature)];
            if (written >= below - 1 || System.nanoTime() >= deadlineNanos) {
                if (written < below - 1) {
                    LOG.warn("{}: the offline store is still behind the online history; serving its newest row as of"
                            + " the moment", view);
                }
                return asOf == null ? null : row;
            }
            Thread.sleep(RETRY_MS);
        }
    }

    private Connection connection() throws SQLException {
        if (connection == null) {
            try {
                Driver driver = (Driver) Class.forName("org.postgresql.Driver", true,
                        OfflineFeatures.class.getClassLoader()).getDeclaredConstructor().newInstance();
                connection = driver.connect(url, credentials);
            } catch (ReflectiveOperationException error) {
                throw new SQLException("pgjdbc (org.postgresql:postgresql) is not on the job's classpath", error);
            }
            connection.setAutoCommit(true);
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
