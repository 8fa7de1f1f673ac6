package com.suuupra.flink.clickhouse;

import java.time.ZoneOffset;

import org.apache.flink.connector.jdbc.core.database.dialect.AbstractDialectConverter;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.TimestampType;

/**
 * Flink values to the native driver's parameters. A TIMESTAMP column is written as a UTC ZonedDateTime into a
 * DateTime('UTC') column: the driver refuses epoch numbers there, and a java.sql.Timestamp would carry the JVM's
 * time zone into the conversion.
 */
public class ClickHouseDialectConverter extends AbstractDialectConverter {
    private static final long serialVersionUID = 1L;

    public ClickHouseDialectConverter(RowType rowType) {
        super(rowType);
    }

    @Override
    public String converterName() {
        return "ClickHouse";
    }

    @Override
    protected JdbcSerializationConverter createExternalConverter(LogicalType type) {
        if (type instanceof TimestampType timestamp) {
            int precision = timestamp.getPrecision();
            return (row, index, statement) -> statement.setObject(
                    index, row.getTimestamp(index, precision).toLocalDateTime().atZone(ZoneOffset.UTC));
        }
        return super.createExternalConverter(type);
    }
}
