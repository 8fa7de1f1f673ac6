package com.suuupra.flink.clickhouse;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.DriverPropertyInfo;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.logging.Logger;

/**
 * The native-protocol ClickHouse driver (housepower), with INSERT statements that wait for {@code executeBatch}.
 *
 * <p>Over the native protocol, preparing an INSERT sends it to the server at once, and the connection then accepts
 * nothing but that insert's data. Flink's upsert sink prepares two statements on one connection (upsert and
 * delete), which that driver refuses. Here a prepared INSERT only records its rows; {@code executeBatch} prepares
 * the real statement, sends every row as one block and closes it, so any number of them share a connection.
 */
public class BatchingClickHouseDriver implements Driver {
    private static final String NATIVE_DRIVER = "com.github.housepower.jdbc.ClickHouseDriver";

    private final Driver nativeDriver;

    public BatchingClickHouseDriver() {
        try {
            nativeDriver = (Driver) Class.forName(NATIVE_DRIVER, true, getClass().getClassLoader())
                    .getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException error) {
            throw new IllegalStateException("the ClickHouse native JDBC driver (" + NATIVE_DRIVER + ") is not on the "
                    + "classpath: add com.github.housepower:clickhouse-native-jdbc-shaded to the job's jars", error);
        }
    }

    @Override
    public Connection connect(String url, Properties info) throws SQLException {
        Connection connection = nativeDriver.connect(url, info);
        if (connection == null) {
            return null;
        }
        return (Connection) Proxy.newProxyInstance(
                getClass().getClassLoader(), new Class<?>[] {Connection.class}, new ConnectionHandler(connection));
    }

    @Override
    public boolean acceptsURL(String url) throws SQLException {
        return nativeDriver.acceptsURL(url);
    }

    @Override
    public DriverPropertyInfo[] getPropertyInfo(String url, Properties info) throws SQLException {
        return nativeDriver.getPropertyInfo(url, info);
    }

    @Override
    public int getMajorVersion() {
        return nativeDriver.getMajorVersion();
    }

    @Override
    public int getMinorVersion() {
        return nativeDriver.getMinorVersion();
    }

    @Override
    public boolean jdbcCompliant() {
        return false;
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
        return nativeDriver.getParentLogger();
    }

    private static Object delegate(Object target, Method method, Object[] args) throws Throwable {
        try {
            return method.invoke(target, args);
        } catch (InvocationTargetException error) {
            throw error.getCause();
        }
    }

    private static final class ConnectionHandler implements InvocationHandler {
        private final Connection connection;

        ConnectionHandler(Connection connection) {
            this.connection = connection;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            if (method.getName().equals("prepareStatement") && args != null && args.length == 1
                    && args[0] instanceof String sql && sql.trim().toUpperCase(Locale.ROOT).startsWith("INSERT")) {
                return Proxy.newProxyInstance(getClass().getClassLoader(), new Class<?>[] {PreparedStatement.class},
                        new DeferredInsert(connection, sql));
            }
            return delegate(connection, method, args);
        }
    }

    /** Records the parameters of each row; sends them all when the batch is executed. */
    private static final class DeferredInsert implements InvocationHandler {
        private final Connection connection;
        private final String sql;
        private final List<List<Object[]>> rows = new ArrayList<>();
        private List<Object[]> current = new ArrayList<>();
        private boolean closed;

        DeferredInsert(Connection connection, String sql) {
            this.connection = connection;
            this.sql = sql;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            String name = method.getName();
            if (name.startsWith("set") && args != null && args.length >= 2 && args[0] instanceof Integer) {
                current.add(new Object[] {method, args});
                return null;
            }
            switch (name) {
                case "addBatch":
                    rows.add(current);
                    current = new ArrayList<>();
                    return null;
                case "clearParameters":
                    current = new ArrayList<>();
                    return null;
                case "clearBatch":
                    rows.clear();
                    return null;
                case "executeBatch":
                    return executeBatch();
                case "close":
                    closed = true;
                    rows.clear();
                    return null;
                case "isClosed":
                    return closed;
                case "getConnection":
                    return connection;
                case "unwrap":
                    throw new SQLException("a deferred ClickHouse INSERT cannot be unwrapped");
                case "isWrapperFor":
                    return false;
                case "hashCode":
                    return System.identityHashCode(proxy);
                case "equals":
                    return proxy == args[0];
                case "toString":
                    return "DeferredInsert(" + sql + ", " + rows.size() + " rows)";
                default:
                    throw new SQLFeatureNotSupportedException(
                            name + " is not supported on a batched ClickHouse INSERT; use addBatch/executeBatch");
            }
        }

        private int[] executeBatch() throws Throwable {
            int[] counts = new int[rows.size()];
            if (rows.isEmpty()) {
                return counts;
            }
            // Flink's executors add their buffered rows again when they retry a failed batch: start afresh each time.
            try (PreparedStatement statement = connection.prepareStatement(sql)) {
                for (List<Object[]> row : rows) {
                    for (Object[] call : row) {
                        delegate(statement, (Method) call[0], (Object[]) call[1]);
                    }
                    statement.addBatch();
                }
                int[] sent = statement.executeBatch();
                return sent.length == counts.length ? sent : counts;
            } finally {
                rows.clear();
            }
        }
    }
}
