package com.suuupra.flink.clickhouse;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * ClickHouse's HTTP interface, which every server version speaks (the 18.16 server here as well as current ones):
 * RowBinary inserts, one query for a table's columns, and retries with exponential back-off where a failure is
 * transient (the server unreachable, overloaded, or restarting) and never where the insert itself is wrong.
 */
final class ClickHouseHttp {
    /** Server error codes worth another try: the server is busy, short of memory or parts, or lost a connection. */
    private static final Set<Integer> RETRYABLE_CODES = Set.of(
            3, // UNEXPECTED_END_OF_FILE (the request was cut)
            159, // TIMEOUT_EXCEEDED
            164, // READONLY (a replica catching up)
            202, // TOO_MANY_SIMULTANEOUS_QUERIES
            203, // NO_FREE_CONNECTION
            209, // SOCKET_TIMEOUT
            210, // NETWORK_ERROR
            241, // MEMORY_LIMIT_EXCEEDED
            242, // TABLE_IS_READ_ONLY
            252, // TOO_MANY_PARTS
            319, // UNKNOWN_STATUS_OF_INSERT
            425, // SYSTEM_ERROR
            999 // KEEPER_EXCEPTION
    );
    private static final Pattern ERROR_CODE = Pattern.compile("Code: (\\d+)");
    private static final long MAX_BACKOFF_MS = 30_000;

    /** A request ClickHouse refused, or that could not be sent; {@code retryable} says whether trying again may help. */
    static final class ClickHouseException extends IOException {
        private static final long serialVersionUID = 1L;
        final boolean retryable;

        ClickHouseException(String message, boolean retryable, Throwable cause) {
            super(message, cause);
            this.retryable = retryable;
        }
    }

    private final ClickHouseSinkConfig config;
    private final HttpClient client;

    ClickHouseHttp(ClickHouseSinkConfig config) {
        this.config = config;
        this.client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofMillis(config.requestTimeoutMs))
                .build();
    }

    /** Column name -> ClickHouse type, in table order; retried like an insert. */
    Map<String, String> columns() throws IOException, InterruptedException {
        String query = "SELECT name, type FROM system.columns WHERE database = " + quote(config.database)
                + " AND table = " + quote(config.table) + " FORMAT TabSeparated";
        String answer = withRetries("read the columns of " + config.qualifiedTable(), () -> send(query, null));
        Map<String, String> columns = new LinkedHashMap<>();
        for (String line : answer.split("\n")) {
            if (!line.isEmpty()) {
                String[] parts = line.split("\t", 2);
                columns.put(unescape(parts[0]), unescape(parts[1]));
            }
        }
        if (columns.isEmpty()) {
            throw new ClickHouseException("ClickHouse table " + config.qualifiedTable() + " does not exist at "
                    + config.url + ": create it first (suuupra clickhouse migrate)", false, null);
        }
        return columns;
    }

    /** Inserts rows already in RowBinary, in the given column order; returns how many attempts it took. */
    int insert(List<String> columnNames, byte[] body, int length, int rows) throws IOException, InterruptedException {
        StringBuilder query = new StringBuilder("INSERT INTO ").append(config.qualifiedTable()).append(" (");
        for (int i = 0; i < columnNames.size(); i++) {
            query.append(i == 0 ? "" : ", ").append('`').append(columnNames.get(i).replace("`", "\\`")).append('`');
        }
        query.append(") FORMAT RowBinary");
        int[] attempts = {0};
        withRetries("insert " + rows + " rows into " + config.qualifiedTable(), () -> {
            attempts[0]++;
            return send(query.toString(), HttpRequest.BodyPublishers.ofByteArray(body, 0, length));
        });
        return attempts[0];
    }

    private interface Attempt {
        String run() throws IOException, InterruptedException;
    }

    private String withRetries(String what, Attempt attempt) throws IOException, InterruptedException {
        for (int tried = 0; ; tried++) {
            try {
                return attempt.run();
            } catch (ClickHouseException error) {
                if (!error.retryable || tried >= config.maxRetries) {
                    String attempts = tried == 0 ? "" : " (after " + (tried + 1) + " attempts)";
                    throw new ClickHouseException("could not " + what + attempts + ": " + error.getMessage(),
                            false, error);
                }
                long backoff = Math.min(MAX_BACKOFF_MS, config.retryBackoffMs << Math.min(tried, 20));
                Thread.sleep(backoff / 2 + ThreadLocalRandom.current().nextLong(backoff / 2 + 1));
            }
        }
    }

    private String send(String query, HttpRequest.BodyPublisher body) throws IOException, InterruptedException {
        URI uri = URI.create(config.url + "/?database=" + encode(config.database) + "&query=" + encode(query));
        HttpRequest.Builder request = HttpRequest.newBuilder(uri).timeout(Duration.ofMillis(config.requestTimeoutMs));
        if (config.username != null && !config.username.isEmpty()) {
            String credentials = config.username + ":" + (config.password == null ? "" : config.password);
            request.header("Authorization",
                    "Basic " + Base64.getEncoder().encodeToString(credentials.getBytes(StandardCharsets.UTF_8)));
        }
        request.POST(body == null ? HttpRequest.BodyPublishers.noBody() : body);
        HttpResponse<String> response;
        try {
            response = client.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (ConnectException | HttpTimeoutException error) {
            throw new ClickHouseException("ClickHouse at " + config.url + " did not answer (" + error + ")", true, error);
        } catch (IOException error) {
            throw new ClickHouseException("the connection to ClickHouse at " + config.url + " failed (" + error + ")",
                    true, error);
        }
        if (response.statusCode() == 200) {
            return response.body();
        }
        String message = response.body().strip();
        Matcher code = ERROR_CODE.matcher(message);
        boolean retryable = response.statusCode() == 503
                || (code.find() && RETRYABLE_CODES.contains(Integer.parseInt(code.group(1))));
        throw new ClickHouseException("ClickHouse answered HTTP " + response.statusCode() + ": "
                + (message.length() > 2000 ? message.substring(0, 2000) + "..." : message), retryable, null);
    }

    private static String encode(String text) {
        return URLEncoder.encode(text, StandardCharsets.UTF_8);
    }

    private static String quote(String text) {
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'";
    }

    /** TabSeparated escapes. */
    private static String unescape(String text) {
        if (text.indexOf('\\') < 0) {
            return text;
        }
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\\' && i + 1 < text.length()) {
                char next = text.charAt(++i);
                out.append(switch (next) {
                    case 't' -> '\t';
                    case 'n' -> '\n';
                    case '0' -> '\0';
                    default -> next;
                });
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
