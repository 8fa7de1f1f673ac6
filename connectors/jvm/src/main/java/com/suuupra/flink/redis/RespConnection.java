package com.suuupra.flink.redis;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One Redis connection speaking RESP2, with pipelining: commands are written in a row, then their replies read.
 *
 * <p>The sink needs only AUTH, SELECT, SCRIPT LOAD and a pipelined EVALSHA; a full client (Jedis 7 brings a pool,
 * JSON, Gson, an auth framework and Unix sockets) would have to be shaded into the jar for those four commands.
 */
final class RespConnection implements Closeable {
    private final Socket socket;
    private final OutputStream out;
    private final InputStream in;
    private int pending;

    /** An error reply of the server (a {@code -ERR ...} line): the command, not the connection, failed. */
    static final class ServerError extends IOException {
        private static final long serialVersionUID = 1L;

        ServerError(String message) {
            super(message);
        }
    }

    RespConnection(String host, int port, int timeoutMs) throws IOException {
        socket = new Socket();
        socket.setTcpNoDelay(true);
        socket.connect(new InetSocketAddress(host, port), timeoutMs);
        socket.setSoTimeout(timeoutMs);
        out = new BufferedOutputStream(socket.getOutputStream(), 1 << 16);
        in = new BufferedInputStream(socket.getInputStream(), 1 << 16);
    }

    /** A connection, authenticated ({@code password} null or empty: none) and on {@code database}. */
    static RespConnection open(String host, int port, String password, int database, int timeoutMs)
            throws IOException {
        RespConnection connection = new RespConnection(host, port, timeoutMs);
        try {
            if (password != null && !password.isEmpty()) {
                connection.call("AUTH".getBytes(StandardCharsets.UTF_8), password.getBytes(StandardCharsets.UTF_8));
            }
            if (database != 0) {
                connection.call("SELECT".getBytes(StandardCharsets.UTF_8),
                        Integer.toString(database).getBytes(StandardCharsets.UTF_8));
            }
        } catch (IOException error) {
            connection.close();
            throw error;
        }
        return connection;
    }

    /** Queues a command; its reply is read by {@link #sync()}. */
    void send(byte[]... arguments) throws IOException {
        out.write('*');
        out.write(Integer.toString(arguments.length).getBytes(StandardCharsets.US_ASCII));
        out.write('\r');
        out.write('\n');
        for (byte[] argument : arguments) {
            out.write('$');
            out.write(Integer.toString(argument.length).getBytes(StandardCharsets.US_ASCII));
            out.write('\r');
            out.write('\n');
            out.write(argument);
            out.write('\r');
            out.write('\n');
        }
        pending++;
    }

    /** Sends the queued commands and returns their replies in order; the first error reply is thrown after all. */
    List<Object> sync() throws IOException {
        out.flush();
        List<Object> replies = new ArrayList<>(pending);
        ServerError firstError = null;
        for (; pending > 0; pending--) {
            try {
                replies.add(read());
            } catch (ServerError error) {
                firstError = firstError == null ? error : firstError;
                replies.add(error);
            }
        }
        if (firstError != null) {
            throw firstError;
        }
        return replies;
    }

    Object call(byte[]... arguments) throws IOException {
        send(arguments);
        return sync().get(0);
    }

    private Object read() throws IOException {
        int type = in.read();
        String line = line();
        switch (type) {
            case '+':
                return line;
            case '-':
                throw new ServerError(line);
            case ':':
                return Long.parseLong(line);
            case '$': {
                int length = Integer.parseInt(line);
                if (length < 0) {
                    return null;
                }
                byte[] data = in.readNBytes(length + 2);
                if (data.length < length + 2) {
                    throw new EOFException("Redis closed the connection inside a reply");
                }
                return java.util.Arrays.copyOf(data, length);
            }
            case '*': {
                int count = Integer.parseInt(line);
                List<Object> items = new ArrayList<>(Math.max(count, 0));
                for (int i = 0; i < count; i++) {
                    items.add(read());
                }
                return items;
            }
            case -1:
                throw new EOFException("Redis closed the connection");
            default:
                throw new IOException("not a RESP reply: " + (char) type + line);
        }
    }

    private String line() throws IOException {
        StringBuilder text = new StringBuilder();
        int previous = -1;
        while (true) {
            int next = in.read();
            if (next == -1) {
                throw new EOFException("Redis closed the connection inside a reply");
            }
            if (previous == '\r' && next == '\n') {
                text.setLength(text.length() - 1);
                return text.toString();
            }
            text.append((char) next);
            previous = next;
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
