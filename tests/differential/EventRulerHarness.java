import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import software.amazon.event.ruler.Machine;

/**
 * Matches event patterns against events with AWS's event-ruler, for Sluice's differential
 * pattern test (tests/differential/test_event_ruler.py).
 *
 * <p>Reads one JSON object per line, {"pattern": TEXT, "events": [TEXT, ...]}, where each TEXT
 * is a JSON document as a string (so numbers reach event-ruler exactly as written). Writes one
 * line per input line: "OK " followed by one character per event, 1 for a match and 0 for none,
 * or "ERR " and event-ruler's reason when it refuses the pattern.
 */
public final class EventRulerHarness {
    private EventRulerHarness() {}

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode request = mapper.readTree(line);
            out.write(answer(request.get("pattern").asText(), request.get("events")));
            out.newLine();
            out.flush();
        }
    }

    private static String answer(String pattern, JsonNode events) {
        Machine machine = Machine.builder().build();
        try {
            machine.addRule("rule", pattern);
        } catch (Exception | StackOverflowError refused) {
            return "ERR " + oneLine(refused);
        }
        StringBuilder matches = new StringBuilder("OK ");
        for (JsonNode event : events) {
            try {
                matches.append(machine.rulesForJSONEvent(event.asText()).isEmpty() ? '0' : '1');
            } catch (Exception | StackOverflowError failed) {
                return "ERR event " + oneLine(failed);
            }
        }
        return matches.toString();
    }

    private static String oneLine(Throwable error) {
        String message = error.getMessage() == null ? error.getClass().getName() : error.getMessage();
        return message.replaceAll("\\s+", " ");
    }
}
