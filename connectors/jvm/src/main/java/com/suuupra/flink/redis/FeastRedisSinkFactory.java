package com.suuupra.flink.redis;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * {@code 'connector' = 'feast-redis'}: a SQL table whose rows are one Feast feature view's online values.
 *
 * <pre>CREATE TABLE online_user_payments (user_id STRING, as_of BIGINT, payments_5m BIGINT, ...) WITH (
 *     'connector' = 'feast-redis', 'host' = '127.0.0.1', 'port' = '6379', 'project' = 'suuupra',
 *     'feature-view' = 'user_payments', 'join-key' = 'user_id', 'timestamp-column' = 'as_of')</pre>
 *
 * Every other physical column is a feature of that name (BIGINT, INT, DOUBLE or STRING). The join key is a string
 * entity key. With {@code 'history.max-rows' = 'N'} and a {@code version-column}, each entity's newest N rows are
 * also kept by time, for reads as of a moment ({@link FeastLayout#historyKey}). See {@link FeastRedisSink} for
 * batching and the newest-row-wins rule.
 */
public class FeastRedisSinkFactory implements DynamicTableSinkFactory {
    static final ConfigOption<String> HOST = ConfigOptions.key("host").stringType().noDefaultValue();
    static final ConfigOption<Integer> PORT = ConfigOptions.key("port").intType().defaultValue(6379);
    static final ConfigOption<String> PASSWORD = ConfigOptions.key("password").stringType().noDefaultValue();
    static final ConfigOption<Integer> DATABASE = ConfigOptions.key("database").intType().defaultValue(0);
    static final ConfigOption<String> PROJECT = ConfigOptions.key("project").stringType().noDefaultValue();
    static final ConfigOption<String> FEATURE_VIEW = ConfigOptions.key("feature-view").stringType().noDefaultValue();
    static final ConfigOption<String> JOIN_KEY = ConfigOptions.key("join-key").stringType().noDefaultValue();
    static final ConfigOption<String> TIMESTAMP_COLUMN =
            ConfigOptions.key("timestamp-column").stringType().noDefaultValue()
                    .withDescription("BIGINT epoch milliseconds: the row's event time, Feast's _ts");
    static final ConfigOption<Duration> FLUSH_INTERVAL =
            ConfigOptions.key("sink.buffer-flush.interval").durationType().defaultValue(Duration.ofMillis(100));
    static final ConfigOption<Integer> FLUSH_ROWS =
            ConfigOptions.key("sink.buffer-flush.max-rows").intType().defaultValue(1000);
    static final ConfigOption<Integer> MAX_RETRIES = ConfigOptions.key("sink.max-retries").intType().defaultValue(3);
    static final ConfigOption<Integer> HISTORY_ROWS = ConfigOptions.key("history.max-rows").intType().defaultValue(0)
            .withDescription("Also keep each entity's newest N rows by time (the as-of history); 0: only the newest");
    static final ConfigOption<String> VERSION_COLUMN = ConfigOptions.key("version-column").stringType()
            .noDefaultValue().withDescription("BIGINT: the row's version (ties of time); required with a history");
    static final ConfigOption<Duration> TIMEOUT =
            ConfigOptions.key("timeout").durationType().defaultValue(Duration.ofSeconds(5));

    @Override
    public String factoryIdentifier() {
        return "feast-redis";
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(HOST, PROJECT, FEATURE_VIEW, JOIN_KEY, TIMESTAMP_COLUMN);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(PORT, PASSWORD, DATABASE, FLUSH_INTERVAL, FLUSH_ROWS, MAX_RETRIES, TIMEOUT, HISTORY_ROWS,
                VERSION_COLUMN, FactoryUtil.SINK_PARALLELISM);
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        ResolvedSchema schema = context.getCatalogTable().getResolvedSchema();
        String joinKey = options.get(JOIN_KEY);
        String timestampColumn = options.get(TIMESTAMP_COLUMN);
        String versionColumn = options.getOptional(VERSION_COLUMN).orElse(null);
        int historyRows = options.get(HISTORY_ROWS);
        require(historyRows >= 0, "history.max-rows must be 0 or more");
        require(historyRows == 0 || versionColumn != null, "history.max-rows needs a version-column");

        int keyIndex = -1;
        int timestampIndex = -1;
        int versionIndex = -1;
        List<FeastRedisSink.Feature> features = new ArrayList<>();
        List<Column> columns = schema.getColumns();
        int position = 0;
        for (Column column : columns) {
            if (!column.isPhysical()) {
                continue;
            }
            LogicalTypeRoot type = column.getDataType().getLogicalType().getTypeRoot();
            if (column.getName().equals(joinKey)) {
                require(type == LogicalTypeRoot.VARCHAR, "join key " + joinKey + " must be STRING");
                keyIndex = position;
            } else if (column.getName().equals(timestampColumn)) {
                require(type == LogicalTypeRoot.BIGINT, "timestamp column " + timestampColumn + " must be BIGINT");
                timestampIndex = position;
            } else if (column.getName().equals(versionColumn)) {
                require(type == LogicalTypeRoot.BIGINT, "version column " + versionColumn + " must be BIGINT");
                versionIndex = position;
            } else {
                require(historyRows == 0 || type == LogicalTypeRoot.BIGINT,
                        "feature column " + column.getName() + " is " + type + "; the history holds BIGINT only");
                require(FeastRedisSink.SUPPORTED.contains(type),
                        "feature column " + column.getName() + " has type " + type + "; use BIGINT, INT, DOUBLE or STRING");
                features.add(new FeastRedisSink.Feature(column.getName(), type, position));
            }
            position++;
        }
        require(keyIndex >= 0, "no column named " + joinKey + " (join-key)");
        require(timestampIndex >= 0, "no column named " + timestampColumn + " (timestamp-column)");
        require(versionColumn == null || versionIndex >= 0, "no column named " + versionColumn + " (version-column)");

        FeastRedisSink sink = new FeastRedisSink(
                options.get(HOST), options.get(PORT), options.getOptional(PASSWORD).orElse(null), options.get(DATABASE),
                options.get(PROJECT), options.get(FEATURE_VIEW), joinKey, keyIndex, timestampIndex, features,
                options.get(FLUSH_INTERVAL).toMillis(), options.get(FLUSH_ROWS), options.get(MAX_RETRIES),
                (int) options.get(TIMEOUT).toMillis(), versionIndex, historyRows);
        return new FeastRedisTableSink(sink, options.getOptional(FactoryUtil.SINK_PARALLELISM).orElse(null));
    }

    private static void require(boolean condition, String message) {
        if (!condition) {
            throw new IllegalArgumentException("feast-redis sink: " + message);
        }
    }
}
