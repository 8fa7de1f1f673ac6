package com.suuupra.flink.clickhouse;

import org.apache.flink.connector.jdbc.core.database.JdbcFactory;
import org.apache.flink.connector.jdbc.core.database.catalog.JdbcCatalog;
import org.apache.flink.connector.jdbc.core.database.dialect.JdbcDialect;

/**
 * Registers {@link ClickHouseDialect} with Flink's JDBC connector (ServiceLoader), so a SQL table with
 * {@code 'connector' = 'jdbc', 'url' = 'jdbc:clickhouse://host:port/db'} writes to ClickHouse.
 */
public class ClickHouseJdbcFactory implements JdbcFactory {
    @Override
    public boolean acceptsURL(String url) {
        return url.startsWith("jdbc:clickhouse:");
    }

    @Override
    public JdbcDialect createDialect() {
        return new ClickHouseDialect();
    }

    @Override
    public JdbcCatalog createCatalog(
            ClassLoader classLoader, String catalogName, String defaultDatabase, String username, String pwd,
            String baseUrl) {
        throw new UnsupportedOperationException("no JDBC catalog for ClickHouse: declare the sink tables in SQL");
    }
}
