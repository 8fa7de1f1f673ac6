package com.suuupra.flink.clickhouse;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.flink.connector.jdbc.core.database.dialect.AbstractDialect;
import org.apache.flink.connector.jdbc.core.database.dialect.JdbcDialectConverter;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;

/**
 * ClickHouse through the native-protocol JDBC driver (com.github.housepower:clickhouse-native-jdbc), which also
 * speaks to the 18.16 server.
 *
 * <p>ClickHouse has no UPDATE: an upsert is an INSERT into a ReplacingMergeTree whose ORDER BY is the sink's primary
 * key, and readers use FINAL. Flink's upsert sink keeps only the newest row per key within a batch, so a window
 * updated a thousand times between two flushes is written once.
 */
public class ClickHouseDialect extends AbstractDialect {
    private static final long serialVersionUID = 1L;

    @Override
    public String dialectName() {
        return "ClickHouse";
    }

    @Override
    public Optional<String> defaultDriverName() {
        return Optional.of(BatchingClickHouseDriver.class.getName());
    }

    @Override
    public JdbcDialectConverter getRowConverter(RowType rowType) {
        return new ClickHouseDialectConverter(rowType);
    }

    @Override
    public String getLimitClause(long limit) {
        return "LIMIT " + limit;
    }

    @Override
    public String quoteIdentifier(String identifier) {
        return "`" + identifier.replace("`", "\\`") + "`";
    }

    @Override
    public String getInsertIntoStatement(String tableName, String[] fieldNames) {
        // The native driver batches only `INSERT INTO t (a, b) VALUES (?, ?)`, with a space before the column list.
        String columns = Arrays.stream(fieldNames).map(this::quoteIdentifier).collect(Collectors.joining(", "));
        String placeholders = Arrays.stream(fieldNames).map(f -> ":" + f).collect(Collectors.joining(", "));
        return "INSERT INTO " + quoteIdentifier(tableName) + " (" + columns + ") VALUES (" + placeholders + ")";
    }

    @Override
    public Optional<String> getUpsertStatement(String tableName, String[] fieldNames, String[] uniqueKeyFields) {
        return Optional.of(getInsertIntoStatement(tableName, fieldNames));
    }

    @Override
    public String getUpdateStatement(String tableName, String[] fieldNames, String[] conditionFields) {
        return getInsertIntoStatement(tableName, fieldNames);
    }

    /**
     * ClickHouse has no batched DELETE (a mutation is an ALTER, which the driver cannot batch, and Flink's upsert
     * sink prepares its delete statement even when none comes). A deleted key is therefore written as the key with
     * every other column at its default (zero counts, empty strings): the newest row of a ReplacingMergeTree, so a
     * retracted aggregate reads as empty. The jobs' aggregates only grow, so their sinks never write one.
     */
    @Override
    public String getDeleteStatement(String tableName, String[] conditionFields) {
        return getInsertIntoStatement(tableName, conditionFields);
    }

    @Override
    public Optional<Range> timestampPrecisionRange() {
        return Optional.of(Range.of(0, 9));
    }

    @Override
    public Optional<Range> decimalPrecisionRange() {
        return Optional.of(Range.of(1, 76));
    }

    @Override
    public Set<LogicalTypeRoot> supportedTypes() {
        return EnumSet.of(
                LogicalTypeRoot.CHAR, LogicalTypeRoot.VARCHAR, LogicalTypeRoot.BOOLEAN, LogicalTypeRoot.TINYINT,
                LogicalTypeRoot.SMALLINT, LogicalTypeRoot.INTEGER, LogicalTypeRoot.BIGINT, LogicalTypeRoot.FLOAT,
                LogicalTypeRoot.DOUBLE, LogicalTypeRoot.DECIMAL, LogicalTypeRoot.DATE,
                LogicalTypeRoot.TIMESTAMP_WITHOUT_TIME_ZONE);
    }
}
