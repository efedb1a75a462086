// PropsDump prints what java.util.Properties.load reads from each file named
// on the command line, for TestPropertiesMatchJava: one line per file, the
// pairs sorted by key, each key and value as hexadecimal UTF-16 code units,
// or ERR when load throws.
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Properties;
import java.util.TreeMap;

public class PropsDump {
    static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            b.append(String.format("%04x", (int) s.charAt(i)));
        }
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        for (String path : args) {
            Properties p = new Properties();
            try (InputStream in = new FileInputStream(path)) {
                p.load(in);
            } catch (IllegalArgumentException e) {
                System.out.println("ERR");
                continue;
            }
            TreeMap<String, String> sorted = new TreeMap<>();
            for (String k : p.stringPropertyNames()) {
                sorted.put(hex(k), hex(p.getProperty(k)));
            }
            StringBuilder line = new StringBuilder("OK");
            sorted.forEach((k, v) -> line.append(' ').append(k).append('=').append(v));
            System.out.println(line);
        }
    }
}
