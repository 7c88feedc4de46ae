# Loads a Vagrantfile with a stand-in for Vagrant and prints, as JSON, every setting and
# call it makes: {"calls": [{"path": [...], "call": NAME, "args": [...], "kw": {...}}, ...]}.
# Blocks taking one argument (configure, define, provider, trigger) are run with a
# recorder for that scope; blocks taking more (a trigger's `ruby` action, run by Vagrant
# against a live machine) are recorded, not run. No Vagrant, provider or VM is needed.
#
#   ruby vagrantfile_dump.rb path/to/Vagrantfile
require "json"

class Recorder < BasicObject
  def initialize(path, log)
    @path = path
    @log = log
  end

  def method_missing(name, *args, **kw, &block)
    name = name.to_s
    if name.end_with?("=")
      @log << { "path" => @path, "set" => name.chomp("="), "value" => args.first }
      return args.first
    end
    @log << { "path" => @path, "call" => name, "args" => args, "kw" => kw,
              "block" => !block.nil? }
    label = args.first.is_a?(::String) ? [name, args.first] : [name]
    child = ::Recorder.new(@path + label, @log)
    block.call(child) if block && block.arity <= 1
    child
  end

  def respond_to_missing?(*)
    true
  end
end

LOG = []

module Vagrant
  def self.configure(version)
    LOG << { "path" => [], "call" => "configure", "args" => [version], "kw" => {},
             "block" => true }
    yield Recorder.new([], LOG)
  end
end

load ARGV.fetch(0)
puts JSON.generate({ "calls" => LOG })
