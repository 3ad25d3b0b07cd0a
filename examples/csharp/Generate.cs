// Generate.cs - stream a story from stories260K with the C# binding.
//   mono generate.exe ../shared/models
using System;
using System.IO;
using Paca;

static class Generate
{
    static int Main(string[] args)
    {
        var models = args.Length > 0 ? args[0] : "../shared/models";
        var path = Path.Combine(models, "stories260K", "stories260K.bin");
        if (!File.Exists(path))
        {
            Console.WriteLine($"skipped: {path} not found");
            return 77;
        }
        using (var model = new Model(path))
        {
            using (var g = model.Generate("Once upon a time", new GenerateOptions { MaxTokens = 64, Temperature = 0.8f, Seed = 42 }))
                foreach (var piece in g) Console.Write(piece);
            Console.WriteLine();
            var done = model.Complete("Once upon a time", new GenerateOptions { MaxTokens = 16 });
            Console.WriteLine($"{done.Tokens.Length} tokens, stop reason {done.StopReason}: {done.Text}");
        }
        return 0;
    }
}
