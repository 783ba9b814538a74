{
  "targets": [
    {
      "target_name": "sbwriter",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/transport/native/writer.c", "src/transport/native/fdpass.c"],
          "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
          "libraries": ["-lpthread"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
