// Generate.java - stream a story from stories260K with the Java binding.
//   java -cp paca.jar:. Generate ../shared/models
import ai.paca.Completion;
import ai.paca.GenerateOptions;
import ai.paca.Model;
import java.io.File;

public class Generate {
  public static void main(String[] args) {
    String models = args.length > 0 ? args[0] : "../shared/models";
    String path = models + "/stories260K/stories260K.bin";
    if (!new File(path).exists()) {
      System.out.println("skipped: " + path + " not found");
      System.exit(77);
    }
    try (Model model = new Model(path)) {
      GenerateOptions options = new GenerateOptions().maxTokens(64).temperature(0.8f).seed(42);
      model.stream("Once upon a time", options).forEach(piece -> {
        System.out.print(piece);
        System.out.flush();
      });
      System.out.println();
      Completion done = model.complete("Once upon a time", new GenerateOptions().maxTokens(16));
      System.out.println(done.tokens.length + " tokens, stop reason " + done.stopReason + ": " + done.text);
    }
  }
}
