package com.suuupra.flink.clickhouse;

import java.io.Serializable;
import java.util.List;

import org.apache.flink.table.types.logical.LogicalType;

/** Where and how one sink table writes; shipped to the writers with the job. */
final class ClickHouseSinkConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    final String url;
    final String database;
    final String table;
    final String username;
    final String password;
    /** The ClickHouse columns written, in order. */
    final List<String> fieldNames;
    /** Where in a row each one's value is. */
    final int[] fieldPositions;
    final List<LogicalType> fieldTypes;
    /** Indexes into fieldNames of the primary key's fields; empty for an append-only table. */
    final int[] keyFields;
    final int batchRows;
    /** What a batch's limit grows to after a few batches in a row left full (BatchSizer). */
    final int maxBatchRows;
    final long batchIntervalMs;
    final int maxInFlight;
    final int maxRetries;
    final long retryBackoffMs;
    final long requestTimeoutMs;

    ClickHouseSinkConfig(
            String url, String database, String table, String username, String password, List<String> fieldNames,
            int[] fieldPositions, List<LogicalType> fieldTypes, int[] keyFields, int batchRows, int maxBatchRows,
            long batchIntervalMs, int maxInFlight, int maxRetries, long retryBackoffMs, long requestTimeoutMs) {
        this.url = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
        this.database = database;
        this.table = table;
        this.username = username;
        this.password = password;
        this.fieldNames = List.copyOf(fieldNames);
        this.fieldPositions = fieldPositions.clone();
        this.fieldTypes = List.copyOf(fieldTypes);
        this.keyFields = keyFields.clone();
        this.batchRows = batchRows;
        this.maxBatchRows = maxBatchRows;
        this.batchIntervalMs = batchIntervalMs;
        this.maxInFlight = maxInFlight;
        this.maxRetries = maxRetries;
        this.retryBackoffMs = retryBackoffMs;
        this.requestTimeoutMs = requestTimeoutMs;
    }

    String qualifiedTable() {
        return "`" + database.replace("`", "\\`") + "`.`" + table.replace("`", "\\`") + "`";
    }

    boolean upsert() {
        return keyFields.length > 0;
    }
}
